<?php
/**
 * Standard Webhooks verification, as bounced signs its webhooks (docs/webhooks.md):
 * webhook-signature = "v1," + base64(HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{body}"))
 * over the raw body, the timestamp within a tolerance of our clock.
 *
 * SPDX-License-Identifier: MIT
 */

namespace MediaWiki\Extension\Bounced;

use InvalidArgumentException;

class WebhookSignature {
	/** @var string */
	private $key;
	/** @var int */
	private $tolerance;

	/**
	 * @param string $secret "whsec_" + base64 of the key (Standard Webhooks), or any other
	 *   string of at least 16 characters, used as it is (as bounced does)
	 * @param int $tolerance seconds between the request's timestamp and our clock
	 */
	public function __construct( string $secret, int $tolerance = 300 ) {
		$secret = trim( $secret );
		if ( strncmp( $secret, 'whsec_', 6 ) === 0 ) {
			$key = base64_decode( substr( $secret, 6 ), true );
			if ( $key === false || strlen( $key ) < 16 ) {
				throw new InvalidArgumentException(
					'$wgBouncedWebhookSecret: whsec_ must be followed by the base64 of 16 bytes or more' );
			}
		} elseif ( strlen( $secret ) >= 16 ) {
			$key = $secret;
		} else {
			throw new InvalidArgumentException(
				'$wgBouncedWebhookSecret: at least 16 characters (or whsec_ and base64)' );
		}
		$this->key = $key;
		$this->tolerance = $tolerance;
	}

	/**
	 * Null when the request is signed with our key, recently; else why not (one line).
	 *
	 * @param string $id the webhook-id header
	 * @param string $timestamp the webhook-timestamp header
	 * @param string $signatures the webhook-signature header (space-separated entries)
	 * @param string $body the raw request body, byte for byte
	 * @param int|null $now Unix time (default: now)
	 */
	public function problem( string $id, string $timestamp, string $signatures, string $body,
		?int $now = null
	): ?string {
		if ( $id === '' || $signatures === '' || preg_match( '/^[0-9]{1,12}\z/', $timestamp ) !== 1 ) {
			return 'missing webhook-id, webhook-timestamp or webhook-signature';
		}
		if ( abs( ( $now ?? time() ) - (int)$timestamp ) > $this->tolerance ) {
			return 'webhook-timestamp is outside the tolerance (' . $this->tolerance . ' s)';
		}
		$expected = base64_encode( hash_hmac( 'sha256', "$id.$timestamp.$body", $this->key, true ) );
		foreach ( explode( ' ', $signatures ) as $entry ) {
			$parts = explode( ',', $entry, 2 );
			if ( count( $parts ) === 2 && $parts[0] === 'v1' && hash_equals( $expected, $parts[1] ) ) {
				return null;
			}
		}
		return 'no valid v1 signature';
	}
}
