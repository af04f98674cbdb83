<?php
/**
 * POST /rest.php/bounced/v1/events: bounced's signed webhook.
 *
 * 200 with {"outcome", "detail"} once the event is applied (the change committed) or
 * deliberately ignored; 401 when the signature or timestamp does not verify; 400 for a
 * verified body that is not an event; 503 when the route is not configured or the wiki
 * cannot save now. bounced retries anything but a 2xx.
 *
 * SPDX-License-Identifier: MIT
 */

namespace MediaWiki\Extension\Bounced\Rest;

use Config;
use InvalidArgumentException;
use MediaWiki\Extension\Bounced\EventProcessor;
use MediaWiki\Extension\Bounced\EventUnavailable;
use MediaWiki\Extension\Bounced\InvalidEvent;
use MediaWiki\Extension\Bounced\WebhookSignature;
use MediaWiki\Logger\LoggerFactory;
use MediaWiki\Rest\Handler;
use MediaWiki\Rest\Response;
use MediaWiki\User\UserFactory;
use ReadOnlyMode;
use Wikimedia\Rdbms\DBError;
use Wikimedia\Rdbms\ILBFactory;

class EventHandler extends Handler {
	/** bounced's events are a few KB; anything much larger is not one. */
	private const MAX_BODY = 1048576;

	/** @var Config */
	private $config;
	/** @var EventProcessor */
	private $processor;

	public function __construct( Config $config, UserFactory $userFactory,
		ReadOnlyMode $readOnlyMode, ILBFactory $lbFactory
	) {
		$this->config = $config;
		$this->processor = new EventProcessor( $userFactory, $readOnlyMode, $lbFactory );
	}

	public function execute(): Response {
		$logger = LoggerFactory::getInstance( 'Bounced' );
		$secret = $this->config->get( 'BouncedWebhookSecret' );
		try {
			$signature = new WebhookSignature( (string)$secret,
				(int)$this->config->get( 'BouncedWebhookTolerance' ) );
		} catch ( InvalidArgumentException $e ) {
			$logger->error( 'Bounced: webhook refused: {error}', [ 'error' => $e->getMessage() ] );
			return $this->answer( 503, 'error', 'the receiver is not configured' );
		}
		$request = $this->getRequest();
		$stream = $request->getBody();
		$body = '';
		while ( !$stream->eof() && strlen( $body ) <= self::MAX_BODY ) {
			$chunk = $stream->read( 65536 );
			if ( $chunk === '' ) {
				break;
			}
			$body .= $chunk;
		}
		if ( strlen( $body ) > self::MAX_BODY ) {
			return $this->answer( 413, 'error', 'body too large' );
		}
		$id = $request->getHeaderLine( 'webhook-id' );
		$problem = $signature->problem( $id, $request->getHeaderLine( 'webhook-timestamp' ),
			$request->getHeaderLine( 'webhook-signature' ), $body );
		if ( $problem !== null ) {
			$logger->warning( 'Bounced: webhook refused: {error}', [ 'error' => $problem ] );
			return $this->answer( 401, 'error', $problem );
		}
		// Verified: only now is the body parsed.
		$event = json_decode( $body, true );
		if ( !is_array( $event ) || ( $event['id'] ?? null ) !== $id ) {
			return $this->answer( 400, 'error', 'the body is not an event with the webhook-id' );
		}
		try {
			[ $outcome, $detail ] = $this->processor->process( $event );
		} catch ( InvalidEvent $e ) {
			return $this->answer( 400, 'error', $e->getMessage() );
		} catch ( EventUnavailable | DBError $e ) {
			$logger->warning( 'Bounced: event {event} not applied, bounced will retry: {error}',
				[ 'event' => $id, 'error' => $e->getMessage() ] );
			return $this->answer( 503, 'error', 'cannot save now, retry later' );
		}
		return $this->answer( 200, 'outcome', $outcome, $detail );
	}

	private function answer( int $status, string $key, string $value, ?string $detail = null
	): Response {
		$data = [ $key => $value ];
		if ( $detail !== null ) {
			$data['detail'] = $detail;
		}
		$response = $this->getResponseFactory()->createJson( $data );
		$response->setStatus( $status );
		return $response;
	}

	/** The request is authorised by its signature, not by a wiki session or user right. */
	public function needsReadAccess() {
		return false;
	}

	/** @inheritDoc */
	public function needsWriteAccess() {
		return false;
	}
}
