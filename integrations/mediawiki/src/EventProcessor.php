<?php
/**
 * What the wiki does with one of bounced's events, whichever way it arrives (the REST
 * route or the maintenance script): act on address.unconfirmed only, and only when the
 * event is still about the user's current, confirmed address.
 *
 * SPDX-License-Identifier: MIT
 */

namespace MediaWiki\Extension\Bounced;

use Bounced\Verp\Verp;
use DateTimeImmutable;
use MediaWiki\Logger\LoggerFactory;
use MediaWiki\MediaWikiServices;
use MediaWiki\User\UserFactory;
use Psr\Log\LoggerInterface;
use ReadOnlyMode;
use Wikimedia\Rdbms\ILBFactory;
use Wikimedia\Timestamp\ConvertibleTimestamp;

class EventProcessor {
	private const ISO_8601 = '/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})\z/';

	/** @var UserFactory */
	private $userFactory;
	/** @var ReadOnlyMode */
	private $readOnlyMode;
	/** @var ILBFactory */
	private $lbFactory;
	/** @var LoggerInterface */
	private $logger;

	public function __construct( UserFactory $userFactory, ReadOnlyMode $readOnlyMode,
		ILBFactory $lbFactory, ?LoggerInterface $logger = null
	) {
		$this->userFactory = $userFactory;
		$this->readOnlyMode = $readOnlyMode;
		$this->lbFactory = $lbFactory;
		$this->logger = $logger ?? LoggerFactory::getInstance( 'Bounced' );
	}

	public static function fromServices( MediaWikiServices $services ): self {
		return new self( $services->getUserFactory(), $services->getReadOnlyMode(),
			$services->getDBLoadBalancerFactory() );
	}

	/**
	 * Apply one event. Returns [outcome, why]: outcome 'unconfirmed' (the change is
	 * committed), 'unchanged' (already unconfirmed: a repeated delivery) or 'ignored'.
	 *
	 * @param array $event the event's JSON object, decoded
	 * @return array{0:string,1:string}
	 * @throws InvalidEvent when the event lacks what an address.unconfirmed event carries
	 * @throws EventUnavailable when the wiki cannot save now (read-only); retry later
	 */
	public function process( array $event ): array {
		$id = is_string( $event['id'] ?? null ) ? $event['id'] : '?';
		$type = $event['type'] ?? null;
		if ( $type !== 'address.unconfirmed' ) {
			return $this->result( $id, 'ignored', 'event type ' . json_encode( $type ) );
		}
		$subject = $event['subject'] ?? null;
		$fingerprint = $event['fingerprint'] ?? null;
		$occurredAt = $event['occurred_at'] ?? null;
		if ( !is_string( $fingerprint ) || preg_match( '/^[a-z2-7]{8}\z/', $fingerprint ) !== 1 ) {
			throw new InvalidEvent( 'address.unconfirmed without a valid fingerprint' );
		}
		if ( !is_string( $occurredAt ) || preg_match( self::ISO_8601, $occurredAt ) !== 1 ) {
			throw new InvalidEvent( 'address.unconfirmed without a valid occurred_at' );
		}
		$occurred = ( new DateTimeImmutable( $occurredAt ) )->getTimestamp();
		// Subjects are the user ids this wiki signed; anything else was not ours.
		if ( !is_string( $subject ) || preg_match( '/^[1-9][0-9]{0,9}\z/', $subject ) !== 1 ) {
			return $this->result( $id, 'ignored', 'subject ' . json_encode( $subject )
				. ' is not a user id' );
		}
		// The primary database, locked for the change (as Special:ConfirmEmail loads it).
		$user = $this->userFactory->newFromId( (int)$subject )->getInstanceForUpdate();
		if ( $user === null ) {
			return $this->result( $id, 'ignored', "no user $subject" );
		}
		$email = $user->getEmail();
		if ( $email === '' || Verp::fingerprint( $email ) !== $fingerprint ) {
			// The bounces were for an address the user no longer has.
			return $this->result( $id, 'ignored', "user $subject has another address now" );
		}
		$confirmed = $user->getEmailAuthenticationTimestamp();
		if ( $confirmed === null ) {
			return $this->result( $id, 'unchanged', "user $subject is already unconfirmed" );
		}
		// Confirmed in the same second as the decision or later: the user proved the
		// address works after bounced's evidence, so the user keeps it.
		if ( (int)ConvertibleTimestamp::convert( TS_UNIX, $confirmed ) >= $occurred ) {
			return $this->result( $id, 'ignored',
				"user $subject confirmed the address again after the event" );
		}
		if ( $this->readOnlyMode->isReadOnly() ) {
			// saveSettings() would return without saving.
			throw new EventUnavailable( 'the wiki is read-only: ' . $this->readOnlyMode->getReason() );
		}
		$user->setEmailAuthenticationTimestamp( null );
		$user->saveSettings();
		// Committed before the caller answers: 2xx (or exit 0) means the change is stored.
		$this->lbFactory->commitPrimaryChanges( __METHOD__ );
		$this->logger->info( 'Bounced: unconfirmed the address of user {user} ({event}): {rule}', [
			'user' => $subject, 'event' => $id, 'rule' => $event['rule'] ?? '' ] );
		return [ 'unconfirmed', "user $subject: address unconfirmed" ];
	}

	/** @return array{0:string,1:string} */
	private function result( string $id, string $outcome, string $why ): array {
		$this->logger->info( 'Bounced: event {event} {outcome}: {why}',
			[ 'event' => $id, 'outcome' => $outcome, 'why' => $why ] );
		return [ $outcome, $why ];
	}
}
