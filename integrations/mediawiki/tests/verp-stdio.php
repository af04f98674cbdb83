<?php
/**
 * src/Verp.php behind a line protocol, so a test can compare it with bounced.verp on many
 * inputs in one process: one JSON request per line on stdin, one JSON answer per line on
 * stdout, in order.
 *
 *   {"op": "sign", "keyfile": TEXT, "key_id": ID, "domain": D, "prefix": P,
 *    "subject": S, "address": A, "stream": S|null, "day": "YYYY-MM-DD"}
 *       -> {"ok": RETURN_PATH} | {"error": MESSAGE}
 *   {"op": "verify", "keyfile": TEXT, "domain": D, "prefix": P, "address": A,
 *    "today": "YYYY-MM-DD"}
 *       -> {"ok": {"key_id", "day", "subject", "stream", "fingerprint", "mac"}}
 *        | {"reason": REASON} | {"error": MESSAGE}
 *   {"op": "keyfile", "text": TEXT}
 *       -> {"ok": [[ID, HEX_SECRET], ...]} (the current key first) | {"error": MESSAGE}
 *
 * SPDX-License-Identifier: MIT
 */

declare( strict_types=1 );

require_once __DIR__ . '/../src/Verp.php';

use Bounced\Verp\InvalidToken;
use Bounced\Verp\Keyring;
use Bounced\Verp\Signer;
use Bounced\Verp\Verifier;

/** @var array<string,Keyring> */
$keyrings = [];

function keyring( string $text ): Keyring {
	global $keyrings;
	return $keyrings[$text] ??= Keyring::fromText( $text );
}

/** @return array<string,mixed> */
function answer( array $req ): array {
	switch ( $req['op'] ?? '' ) {
		case 'sign':
			$keys = keyring( $req['keyfile'] );
			$signer = new Signer( new Keyring( $keys->keys, $req['key_id'] ), $req['domain'],
				$req['prefix'] );
			return [ 'ok' => $signer->returnPath( $req['subject'], $req['address'], $req['stream'],
				$req['day'] ) ];
		case 'verify':
			$verifier = new Verifier( keyring( $req['keyfile'] ), $req['domain'], $req['prefix'] );
			try {
				$token = $verifier->verify( $req['address'], $req['today'] );
			} catch ( InvalidToken $e ) {
				return [ 'reason' => $e->reason ];
			}
			return [ 'ok' => [ 'key_id' => $token->keyId, 'day' => $token->dayIso(),
				'subject' => $token->subject, 'stream' => $token->stream,
				'fingerprint' => $token->fingerprint, 'mac' => $token->mac ] ];
		case 'keyfile':
			$keys = Keyring::fromText( $req['text'] );
			$out = [];
			foreach ( $keys->keys as $id => $secret ) {
				$out[] = [ (string)$id, bin2hex( $secret ) ];
			}
			return [ 'ok' => $out ];
	}
	throw new InvalidArgumentException( 'unknown op' );
}

while ( ( $line = fgets( STDIN ) ) !== false ) {
	$req = json_decode( $line, true );
	try {
		$out = is_array( $req ) ? answer( $req ) : [ 'error' => 'not a JSON object' ];
	} catch ( InvalidArgumentException $e ) {
		$out = [ 'error' => $e->getMessage() ];
	}
	echo json_encode( $out, JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE ), "\n";
}
