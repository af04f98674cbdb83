<?php
/**
 * Apply one of bounced's events to the wiki: the `command` action's alternative to the
 * webhook. bounced runs it with the event's JSON on standard input:
 *
 *     [actions.wiki]
 *     type = "command"
 *     command = ["/usr/bin/php", "-d", "pcre.jit=0",
 *                "/var/lib/mediawiki/extensions/Bounced/maintenance/bouncedEvent.php"]
 *     events = ["address.unconfirmed"]
 *
 * Exit status: 0 applied or deliberately ignored (one line on stdout says which), 65 the
 * input is not an event, 75 the wiki cannot save now (bounced retries every non-zero
 * status), 78 no MediaWiki found. Set MW_INSTALL_PATH when the extension is not in the
 * wiki's extensions/ directory (and name it in the action's pass_env: bounced gives a
 * command only the variables listed there, besides PATH and the locale).
 *
 * SPDX-License-Identifier: MIT
 */

use MediaWiki\Extension\Bounced\EventProcessor;
use MediaWiki\Extension\Bounced\EventUnavailable;
use MediaWiki\Extension\Bounced\InvalidEvent;
use MediaWiki\MediaWikiServices;
use Wikimedia\Rdbms\DBError;

$IP = getenv( 'MW_INSTALL_PATH' );
if ( $IP === false ) {
	$IP = dirname( __DIR__, 3 );
}
if ( !is_file( "$IP/maintenance/Maintenance.php" ) ) {
	fwrite( STDERR, "bouncedEvent: no MediaWiki in $IP (set MW_INSTALL_PATH)\n" );
	exit( 78 );  // EX_CONFIG
}
require_once "$IP/maintenance/Maintenance.php";

class BouncedEvent extends Maintenance {
	/** sysexits.h: EX_DATAERR, EX_TEMPFAIL */
	private const DATA_ERROR = 65;
	private const TEMPORARY = 75;
	private const MAX_BODY = 1048576;

	public function __construct() {
		parent::__construct();
		$this->addDescription( "Apply one of bounced's events (its JSON on standard input): "
			. 'unconfirm the address of the user it names, if it still applies' );
		$this->requireExtension( 'Bounced' );
	}

	public function execute() {
		$body = stream_get_contents( STDIN, self::MAX_BODY + 1 );
		if ( $body === false || $body === '' ) {
			$this->fatalError( 'bouncedEvent: no event on standard input', self::DATA_ERROR );
		}
		if ( strlen( $body ) > self::MAX_BODY ) {
			$this->fatalError( 'bouncedEvent: the input is larger than 1 MiB: not an event',
				self::DATA_ERROR );
		}
		$event = json_decode( $body, true );
		if ( !is_array( $event ) ) {
			$this->fatalError( 'bouncedEvent: the input is not a JSON object', self::DATA_ERROR );
		}
		$expected = getenv( 'BOUNCED_EVENT_ID' );
		if ( $expected !== false && ( $event['id'] ?? null ) !== $expected ) {
			$this->fatalError( 'bouncedEvent: the event id differs from $BOUNCED_EVENT_ID',
				self::DATA_ERROR );
		}
		try {
			[ $outcome, $detail ] = EventProcessor::fromServices( MediaWikiServices::getInstance() )
				->process( $event );
		} catch ( InvalidEvent $e ) {
			$this->fatalError( 'bouncedEvent: ' . $e->getMessage(), self::DATA_ERROR );
		} catch ( EventUnavailable | DBError $e ) {
			$this->fatalError( 'bouncedEvent: cannot save now, retry later: ' . $e->getMessage(),
				self::TEMPORARY );
		}
		$this->output( "$outcome: $detail\n" );
	}
}

$maintClass = BouncedEvent::class;
require_once RUN_MAINTENANCE_IF_MAIN;
