<?php
/**
 * Checks src/Verp.php against every test vector of bounced's token format.
 *
 *     php tests/run-vectors.php [path/to/tokens.json]
 *
 * One check per vector item (each signing, each verification, each invalid address, each
 * signing error, each fingerprint, each bad key file, and the key file itself); prints the
 * failures, then "N passed, N failed". Exit status 0 when none failed.
 *
 * SPDX-License-Identifier: MIT
 */

declare( strict_types=1 );

require_once __DIR__ . '/../src/Verp.php';

use Bounced\Verp\InvalidToken;
use Bounced\Verp\Keyring;
use Bounced\Verp\Signer;
use Bounced\Verp\Token;
use Bounced\Verp\Verifier;
use Bounced\Verp\Verp;

$path = $argv[1] ?? __DIR__ . '/../../../tests/vectors/tokens.json';
$text = @file_get_contents( $path );
if ( $text === false ) {
	fwrite( STDERR, "cannot read $path\n" );
	exit( 2 );
}
$vectors = json_decode( $text, true );
if ( !is_array( $vectors ) ) {
	fwrite( STDERR, "$path is not a JSON object\n" );
	exit( 2 );
}

$passed = 0;
$failed = 0;

/** Record one check; print it when it failed. */
function check( string $what, bool $ok, string $detail = '' ): void {
	global $passed, $failed;
	if ( $ok ) {
		$passed++;
		return;
	}
	$failed++;
	echo "FAIL $what" . ( $detail !== '' ? ": $detail" : '' ) . "\n";
}

/** The token's fields as the vectors write them. */
function fields( Token $token ): array {
	return [ 'key_id' => $token->keyId, 'day' => $token->dayIso(), 'subject' => $token->subject,
		'stream' => $token->stream, 'fingerprint' => $token->fingerprint, 'mac' => $token->mac,
		'token_id' => $token->tokenId() ];
}

/** Run $fn; the exception it threw (or null). */
function thrown( callable $fn ): ?Throwable {
	try {
		$fn();
	} catch ( Throwable $e ) {
		return $e;
	}
	return null;
}

$keyring = Keyring::fromText( $vectors['keyfile'] );
check( 'keyfile: ids in file order, the first current',
	array_keys( $keyring->keys ) === [ 'k1', 'k0', '2024q1ab' ] && $keyring->currentId === 'k1',
	json_encode( array_keys( $keyring->keys ) ) );

/** The vectors' keys with $keyId as the current (signing) key. */
function keyringWith( Keyring $keyring, string $keyId ): Keyring {
	return new Keyring( $keyring->keys, $keyId );
}

foreach ( $vectors['valid'] as $v ) {
	$in = $v['sign'];
	$name = "valid '{$v['name']}'";
	$error = thrown( static function () use ( $keyring, $in, $v, &$got ) {
		$signer = new Signer( keyringWith( $keyring, $in['key_id'] ), $in['domain'], $in['prefix'] );
		$token = $signer->sign( $in['subject'], $in['address'], $in['stream'], $in['day'] );
		$got = [
			'return_path' => $signer->returnPath( $in['subject'], $in['address'], $in['stream'],
				$in['day'] ),
			'mac_message' => $token->macMessage( $in['prefix'] ),
			'token' => fields( $token ),
		];
	} );
	$want = [ 'return_path' => $v['return_path'], 'mac_message' => $v['mac_message'],
		'token' => $v['token'] ];
	check( "$name: sign", $error === null && $got === $want,
		$error ? $error->getMessage() : json_encode( $got, JSON_UNESCAPED_UNICODE ) );
	$verifier = new Verifier( $keyring, $in['domain'], $in['prefix'], $vectors['max_age_days'],
		$vectors['future_skew_days'] );
	foreach ( $v['verify'] as $case ) {
		$token = null;
		$error = thrown( static function () use ( $verifier, $case, &$token ) {
			$token = $verifier->verify( $case['address'], $case['today'] );
		} );
		check( "$name: verify {$case['address']} on {$case['today']}",
			$error === null && fields( $token ) === $v['token'],
			$error ? $error->getMessage() : json_encode( fields( $token ) ) );
	}
}

$verifier = new Verifier( $keyring, $vectors['domain'], $vectors['prefix'],
	$vectors['max_age_days'], $vectors['future_skew_days'] );
foreach ( $vectors['invalid'] as $v ) {
	$error = thrown( static function () use ( $verifier, $v ) {
		$verifier->verify( $v['address'], $v['today'] );
	} );
	$reason = $error instanceof InvalidToken ? $error->reason : null;
	check( "invalid '{$v['name']}'", $reason === $v['reason'],
		$error ? get_class( $error ) . " ($reason): " . $error->getMessage() : 'accepted' );
}

foreach ( $vectors['sign_errors'] as $v ) {
	$error = thrown( static function () use ( $keyring, $vectors, $v ) {
		$signer = new Signer( keyringWith( $keyring, $v['key_id'] ), $vectors['domain'],
			$vectors['prefix'] );
		$signer->returnPath( $v['subject'], $v['address'], $v['stream'], '2024-03-15' );
	} );
	check( "sign error '{$v['name']}'", $error instanceof InvalidArgumentException
		&& !( $error instanceof InvalidToken )
		&& strpos( $error->getMessage(), $v['message_contains'] ) !== false,
		$error ? $error->getMessage() : 'signed' );
}

foreach ( $vectors['fingerprints'] as $v ) {
	$normalised = Verp::lower( trim( $v['address'], Verp::WHITESPACE ) );
	$fingerprint = Verp::fingerprint( $v['address'] );
	check( 'fingerprint ' . json_encode( $v['address'], JSON_UNESCAPED_UNICODE ),
		$normalised === $v['normalised'] && $fingerprint === $v['fingerprint'],
		"$normalised $fingerprint" );
}

foreach ( $vectors['bad_keyfiles'] as $v ) {
	$error = thrown( static function () use ( $v ) {
		Keyring::fromText( $v['text'] );
	} );
	check( "bad key file ({$v['why']})", $error instanceof InvalidArgumentException
		&& strpos( $error->getMessage(), "line {$v['line']}:" ) === 0
		&& strpos( $error->getMessage(), 'AAECAwQFBgcICQoLDA0ODw' ) === false,
		$error ? $error->getMessage() : 'loaded' );
}

echo "$passed passed, $failed failed\n";
exit( $failed === 0 ? 0 : 1 );
