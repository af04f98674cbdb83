<?php
/**
 * Signed VERP return paths for bounced, in PHP: <prefix>-<token>@<domain>.
 *
 * A port of bounced/verp.py (the reference implementation) written from
 * docs/token-format.md. It needs nothing but PHP itself (hash, json, pcre) and mbstring for
 * lower-casing non-ASCII addresses, so any PHP application can copy this one file.
 * tests/run-vectors.php checks it against every test vector in tests/vectors/tokens.json.
 *
 *     $signer = new \Bounced\Verp\Signer(
 *         \Bounced\Verp\Keyring::load('/etc/bounced/verp-keys'), 'bounces.example.org' );
 *     $returnPath = $signer->returnPath( '4711', 'alice@example.net' );
 *
 * SPDX-License-Identifier: MIT
 */

declare( strict_types=1 );

namespace Bounced\Verp;

use DateTimeImmutable;
use DateTimeInterface;
use DateTimeZone;
use InvalidArgumentException;

/** An address is not a valid return path; $reason is one of Verifier::REASONS. */
final class InvalidToken extends InvalidArgumentException {
	/** @var string */
	public $reason;

	public function __construct( string $reason, string $message ) {
		parent::__construct( $message );
		$this->reason = $reason;
	}
}

/** The encodings and constants of the format (docs/token-format.md). */
final class Verp {
	public const FORMAT_LABEL = 'bounced-verp-v1';
	public const MAX_LOCAL_PART = 64;
	public const MAC_BYTES = 10;
	public const FINGERPRINT_BYTES = 5;
	public const MIN_SECRET_BYTES = 16;
	/** 20 bits of days since 1970-01-01: 4 base32 digits. */
	public const MAX_DAY = 1048575;
	public const B32 = 'abcdefghijklmnopqrstuvwxyz234567';
	/** The ASCII whitespace trimmed from addresses (Python's strip() argument). */
	public const WHITESPACE = " \t\r\n\x0B\x0C";

	// Anchored with \z, not $: '$' would also match before a final newline.
	public const NAME = '/^[a-z0-9-]+\z/';
	public const LITERAL = '/^[a-z0-9][a-z0-9-]*\z/';
	public const ENCODED = '/^-[a-z2-7]+\z/';
	public const KEY_ID = '/^[a-z0-9]{1,8}\z/';
	public const TAIL = '/^([a-z0-9]{1,8})([a-z2-7]{4})([a-z2-7]{8})([a-z2-7]{16})\z/';

	/** Unpadded lower-case RFC 4648 base32. */
	public static function b32( string $data ): string {
		$out = '';
		$buffer = 0;
		$bits = 0;
		$length = strlen( $data );
		for ( $i = 0; $i < $length; $i++ ) {
			$buffer = ( ( $buffer << 8 ) | ord( $data[$i] ) ) & 0xFFFF;
			$bits += 8;
			while ( $bits >= 5 ) {
				$bits -= 5;
				$out .= self::B32[( $buffer >> $bits ) & 31];
			}
		}
		if ( $bits > 0 ) {
			// The last group is padded on the right with zero bits.
			$out .= self::B32[( $buffer << ( 5 - $bits ) ) & 31];
		}
		return $out;
	}

	/**
	 * The bytes of unpadded lower-case base32, or null when the length is impossible.
	 * Bits left over at the end are dropped (the caller checks canonical form).
	 */
	public static function b32decode( string $text ): ?string {
		if ( in_array( strlen( $text ) % 8, [ 1, 3, 6 ], true ) ) {
			return null;
		}
		$out = '';
		$buffer = 0;
		$bits = 0;
		$length = strlen( $text );
		for ( $i = 0; $i < $length; $i++ ) {
			$value = strpos( self::B32, $text[$i] );
			if ( $value === false ) {
				return null;
			}
			$buffer = ( ( $buffer << 5 ) | $value ) & 0xFFF;
			$bits += 5;
			if ( $bits >= 8 ) {
				$bits -= 8;
				$out .= chr( ( $buffer >> $bits ) & 0xFF );
			}
		}
		return $out;
	}

	/** True when $text is well-formed UTF-8 (no overlong forms, surrogates or > U+10FFFF). */
	public static function isUtf8( string $text ): bool {
		return preg_match( '//u', $text ) === 1;
	}

	/** Lower-case as Python's str.lower() does for the text we see (Unicode lower case). */
	public static function lower( string $text ): string {
		if ( preg_match( '/[\x80-\xFF]/', $text ) !== 1 ) {
			return strtolower( $text );
		}
		if ( !function_exists( 'mb_strtolower' ) ) {
			throw new InvalidArgumentException(
				'lower-casing a non-ASCII address needs the mbstring extension' );
		}
		if ( strpos( $text, "\u{3A3}" ) !== false ) {
			$text = self::finalSigma( $text );
		}
		return mb_strtolower( $text, 'UTF-8' );
	}

	/** Cased letters (Unicode's derived property Cased: Lu, Ll, Lt, Other_Lowercase/Uppercase). */
	private const CASED = '/^[\p{Lu}\p{Ll}\p{Lt}\x{AA}\x{BA}\x{2B0}-\x{2B8}\x{2C0}\x{2C1}'
		. '\x{2E0}-\x{2E4}\x{345}\x{37A}\x{1D2C}-\x{1D6A}\x{1D78}\x{1D9B}-\x{1DBF}\x{2071}'
		. '\x{207F}\x{2090}-\x{209C}\x{2160}-\x{217F}\x{24B6}-\x{24E9}]\z/u';
	/** Case_Ignorable: marks, format characters, modifiers, and apostrophes, dots, colons. */
	private const CASE_IGNORABLE = '/^[\p{Mn}\p{Me}\p{Cf}\p{Lm}\p{Sk}\x{27}\x{2E}\x{3A}\x{B7}'
		. '\x{387}\x{55F}\x{5F4}\x{2018}\x{2019}\x{2024}\x{2027}\x{FE13}\x{FE52}\x{FE55}'
		. '\x{FF07}\x{FF0E}\x{FF1A}]\z/u';

	/**
	 * A capital sigma that ends a word lower-cases to final sigma, as Python's str.lower()
	 * and PHP 8.3's mb_strtolower() do (Unicode's Final_Sigma condition: a cased letter
	 * before it and none after it, skipping case-ignorable characters); PHP 8.2's
	 * mb_strtolower() always gives the medial form. Those sigmas are replaced here.
	 */
	private static function finalSigma( string $text ): string {
		$chars = preg_split( '//u', $text, -1, PREG_SPLIT_NO_EMPTY ) ?: [];
		$count = count( $chars );
		$is = static function ( string $pattern, int $j ) use ( $chars ): bool {
			return preg_match( $pattern, $chars[$j] ) === 1;
		};
		$out = $chars;
		foreach ( $chars as $i => $char ) {
			if ( $char !== "\u{3A3}" ) {
				continue;
			}
			for ( $j = $i - 1; $j >= 0 && $is( self::CASE_IGNORABLE, $j ); $j-- );
			$final = $j >= 0 && $is( self::CASED, $j );
			for ( $j = $i + 1; $final && $j < $count && $is( self::CASE_IGNORABLE, $j ); $j++ );
			if ( $final && ( $j === $count || !$is( self::CASED, $j ) ) ) {
				$out[$i] = "\u{3C2}";
			}
		}
		return implode( '', $out );
	}

	/** base32(SHA-256(address stripped of ASCII whitespace, lower-cased)[0:5]): 8 characters. */
	public static function fingerprint( string $address ): string {
		if ( !self::isUtf8( $address ) ) {
			throw new InvalidArgumentException( 'address is not valid UTF-8' );
		}
		$normalised = self::lower( trim( $address, self::WHITESPACE ) );
		return self::b32( substr( hash( 'sha256', $normalised, true ), 0, self::FINGERPRINT_BYTES ) );
	}

	/** The form a subject takes in the token: itself if plain, else "-" + base32(UTF-8). */
	public static function encodeSubject( string $subject ): string {
		if ( $subject === '' ) {
			throw new InvalidArgumentException( 'subject must not be empty' );
		}
		if ( preg_match( self::LITERAL, $subject ) === 1 ) {
			return $subject;
		}
		if ( !self::isUtf8( $subject ) ) {
			throw new InvalidArgumentException( 'subject cannot be encoded: it is not valid UTF-8' );
		}
		return '-' . self::b32( $subject );
	}

	/** The subject from its carried form; InvalidToken("malformed") unless canonical. */
	public static function decodeSubject( string $carried ): string {
		if ( preg_match( self::LITERAL, $carried ) === 1 ) {
			return $carried;
		}
		if ( preg_match( self::ENCODED, $carried ) === 1 ) {
			$data = substr( $carried, 1 );
			$subject = self::b32decode( $data );
			if ( $subject !== null && $subject !== '' && self::isUtf8( $subject )
				&& self::b32( $subject ) === $data
				&& preg_match( self::LITERAL, $subject ) !== 1
			) {
				return $subject;
			}
		}
		throw new InvalidToken( 'malformed', 'subject part is not a valid subject encoding' );
	}

	/** Days since 1970-01-01 of a proleptic Gregorian date (any year). */
	public static function daysFromCivil( int $year, int $month, int $day ): int {
		$year -= $month <= 2 ? 1 : 0;
		$era = intdiv( $year >= 0 ? $year : $year - 399, 400 );
		$yearOfEra = $year - $era * 400;
		$dayOfYear = intdiv( 153 * ( $month + ( $month > 2 ? -3 : 9 ) ) + 2, 5 ) + $day - 1;
		$dayOfEra = $yearOfEra * 365 + intdiv( $yearOfEra, 4 ) - intdiv( $yearOfEra, 100 )
			+ $dayOfYear;
		return $era * 146097 + $dayOfEra - 719468;
	}

	/** 'YYYY-MM-DD' of a day number (inverse of daysFromCivil). */
	public static function civilFromDays( int $days ): string {
		$days += 719468;
		$era = intdiv( $days >= 0 ? $days : $days - 146096, 146097 );
		$dayOfEra = $days - $era * 146097;
		$yearOfEra = intdiv( $dayOfEra - intdiv( $dayOfEra, 1460 ) + intdiv( $dayOfEra, 36524 )
			- intdiv( $dayOfEra, 146096 ), 365 );
		$dayOfYear = $dayOfEra - ( 365 * $yearOfEra + intdiv( $yearOfEra, 4 )
			- intdiv( $yearOfEra, 100 ) );
		$mp = intdiv( 5 * $dayOfYear + 2, 153 );
		$day = $dayOfYear - intdiv( 153 * $mp + 2, 5 ) + 1;
		$month = $mp < 10 ? $mp + 3 : $mp - 9;
		$year = $yearOfEra + $era * 400 + ( $month <= 2 ? 1 : 0 );
		return sprintf( '%04d-%02d-%02d', $year, $month, $day );
	}

	/**
	 * The day number of a date: 'YYYY-MM-DD', a DateTimeInterface (its UTC date), or null
	 * for today in UTC.
	 *
	 * @param DateTimeInterface|string|null $day
	 */
	public static function dayNumber( $day ): int {
		if ( $day === null ) {
			return intdiv( time(), 86400 );
		}
		if ( $day instanceof DateTimeInterface ) {
			$utc = DateTimeImmutable::createFromInterface( $day )
				->setTimezone( new DateTimeZone( 'UTC' ) );
			return self::daysFromCivil( (int)$utc->format( 'Y' ), (int)$utc->format( 'n' ),
				(int)$utc->format( 'j' ) );
		}
		if ( preg_match( '/^(\d{4})-(\d{2})-(\d{2})\z/', $day, $m ) !== 1
			|| !checkdate( (int)$m[2], (int)$m[3], (int)$m[1] )
		) {
			throw new InvalidArgumentException( "not a date (YYYY-MM-DD): '$day'" );
		}
		return self::daysFromCivil( (int)$m[1], (int)$m[2], (int)$m[3] );
	}

	/** The 4 base32 digits of a day number, most significant first. */
	public static function dayChars( int $n ): string {
		if ( $n < 0 || $n > self::MAX_DAY ) {
			throw new InvalidArgumentException( 'day ' . self::civilFromDays( $n )
				. ' is outside 1970-01-01 .. year 4840' );
		}
		$out = '';
		foreach ( [ 15, 10, 5, 0 ] as $shift ) {
			$out .= self::B32[( $n >> $shift ) & 31];
		}
		return $out;
	}

	/** Python's str.isspace() characters, for splitting key files as bounced does. */
	public const PY_SPACE = '\t\n\x0B\x0C\r\x1C-\x1F \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}'
		. '\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}';
	/** Python's str.splitlines() boundaries. */
	public const PY_LINE_BREAK = '/\r\n|[\n\x0B\x0C\r\x1C\x1D\x1E\x{85}\x{2028}\x{2029}]/u';

	/** The prefix and the domain checked; the domain lower-cased (Signer and Verifier). */
	public static function checkNames( string $domain, string $prefix ): string {
		if ( preg_match( self::NAME, $prefix ) !== 1 ) {
			throw new InvalidArgumentException(
				"prefix '$prefix' must be non-empty: a-z 0-9 and '-' only" );
		}
		if ( $domain === '' || strpos( $domain, '@' ) !== false || !self::isUtf8( $domain )
			|| preg_match( '/[' . self::PY_SPACE . ']/u', $domain ) === 1
		) {
			throw new InvalidArgumentException( "not a domain name: '$domain'" );
		}
		return self::lower( $domain );
	}
}

/** The fields of a return-path token (decoded; $subject as the application gave it). */
final class Token {
	/** @var string */
	public $keyId;
	/** @var int days since 1970-01-01 */
	public $day;
	/** @var string */
	public $subject;
	/** @var string|null */
	public $stream;
	/** @var string */
	public $fingerprint;
	/** @var string */
	public $mac;

	public function __construct( string $keyId, int $day, string $subject, ?string $stream,
		string $fingerprint, string $mac
	) {
		$this->keyId = $keyId;
		$this->day = $day;
		$this->subject = $subject;
		$this->stream = $stream;
		$this->fingerprint = $fingerprint;
		$this->mac = $mac;
	}

	/** The issue day as 'YYYY-MM-DD'. */
	public function dayIso(): string {
		return Verp::civilFromDays( $this->day );
	}

	/** The token string without its MAC. */
	public function unsigned(): string {
		$stream = $this->stream !== null ? ".{$this->stream}" : '';
		return Verp::encodeSubject( $this->subject ) . $stream . '.' . $this->keyId
			. Verp::dayChars( $this->day ) . $this->fingerprint;
	}

	/** The canonical token string: the local part after "<prefix>-". */
	public function tokenId(): string {
		return $this->unsigned() . $this->mac;
	}

	/** Exactly the bytes the MAC covers (docs/token-format.md, "What is signed"). */
	public function macMessage( string $prefix ): string {
		Verp::dayChars( $this->day );
		return implode( "\n", [ Verp::FORMAT_LABEL, $prefix, $this->keyId, (string)$this->day,
			Verp::encodeSubject( $this->subject ), $this->stream ?? '', $this->fingerprint ] );
	}

	/** base32 of the first 10 bytes of HMAC-SHA256(key, macMessage(prefix)). */
	public function computeMac( string $key, string $prefix ): string {
		$digest = hash_hmac( 'sha256', $this->macMessage( $prefix ), $key, true );
		return Verp::b32( substr( $digest, 0, Verp::MAC_BYTES ) );
	}

	/** Split a token string (lower case, after "<prefix>-") into its fields, MAC unchecked. */
	public static function parse( string $text ): Token {
		$parts = explode( '.', $text );
		if ( count( $parts ) !== 2 && count( $parts ) !== 3 ) {
			throw new InvalidToken( 'malformed', 'token does not have 2 or 3 dot-separated parts' );
		}
		$stream = count( $parts ) === 3 ? $parts[1] : null;
		if ( $stream !== null && preg_match( Verp::NAME, $stream ) !== 1 ) {
			throw new InvalidToken( 'malformed', 'stream part has characters outside a-z 0-9 -' );
		}
		if ( preg_match( Verp::TAIL, $parts[count( $parts ) - 1], $tail ) !== 1 ) {
			throw new InvalidToken( 'malformed',
				'last part is not <key-id><day><fingerprint><mac>' );
		}
		$day = 0;
		foreach ( [ 15, 10, 5, 0 ] as $i => $shift ) {
			$day |= strpos( Verp::B32, $tail[2][$i] ) << $shift;
		}
		return new Token( $tail[1], $day, Verp::decodeSubject( $parts[0] ), $stream, $tail[3],
			$tail[4] );
	}
}

/** Ordered signing keys: the first (current) signs, every key verifies. */
final class Keyring {
	/** @var array<string,string> key id => secret bytes, the current key first */
	public $keys;
	/** @var string */
	public $currentId;

	/**
	 * @param array<string,string> $keys key id => secret bytes
	 * @param string $currentId
	 */
	public function __construct( array $keys, string $currentId ) {
		if ( !array_key_exists( $currentId, $keys ) ) {
			throw new InvalidArgumentException( "current key id '$currentId' is not in the keyring" );
		}
		foreach ( $keys as $keyId => $secret ) {
			self::checkKey( (string)$keyId, $secret );
		}
		$this->keys = [ $currentId => $keys[$currentId] ] + $keys;
		$this->currentId = $currentId;
	}

	private static function checkKey( string $keyId, string $secret ): void {
		if ( preg_match( Verp::KEY_ID, $keyId ) !== 1 ) {
			// The value is not shown: it may be a misplaced secret.
			throw new InvalidArgumentException( 'key id must be 1-8 characters of a-z and 0-9' );
		}
		if ( strlen( $secret ) < Verp::MIN_SECRET_BYTES ) {
			throw new InvalidArgumentException( "secret of key '$keyId' has " . strlen( $secret )
				. ' bytes, need at least ' . Verp::MIN_SECRET_BYTES );
		}
	}

	/** Standard or URL-safe base64, padding optional (as bounced reads it). */
	public static function decodeSecret( string $text ): string {
		if ( strpbrk( $text, '-_' ) !== false && strpbrk( $text, '+/' ) !== false ) {
			throw new InvalidArgumentException(
				'secret mixes the standard and URL-safe base64 alphabets' );
		}
		$data = rtrim( strtr( $text, '-_', '+/' ), '=' );
		if ( preg_match( '/^[A-Za-z0-9+\/]*\z/', $data ) !== 1 || strlen( $data ) % 4 === 1 ) {
			throw new InvalidArgumentException( 'secret is not valid base64' );
		}
		$decoded = base64_decode( $data . str_repeat( '=', ( 4 - strlen( $data ) % 4 ) % 4 ), true );
		if ( $decoded === false ) {
			throw new InvalidArgumentException( 'secret is not valid base64' );
		}
		return $decoded;
	}

	/** Parse the key-file format: one "<key-id> <secret>" per line; the first is current. */
	public static function fromText( string $text ): Keyring {
		if ( !Verp::isUtf8( $text ) ) {
			throw new InvalidArgumentException( 'key file is not valid UTF-8' );
		}
		$keys = [];
		$lines = preg_split( Verp::PY_LINE_BREAK, $text );
		if ( $lines !== false && end( $lines ) === '' ) {
			array_pop( $lines );  // a final line break ends the last line; it starts none
		}
		foreach ( $lines ?: [] as $index => $raw ) {
			$fields = preg_split( '/[' . Verp::PY_SPACE . ']+/u', $raw, -1, PREG_SPLIT_NO_EMPTY );
			if ( !$fields || $fields[0][0] === '#' ) {
				continue;
			}
			$number = $index + 1;
			try {
				if ( count( $fields ) !== 2 ) {
					throw new InvalidArgumentException( "expected '<key-id> <secret>'" );
				}
				if ( array_key_exists( $fields[0], $keys ) ) {
					throw new InvalidArgumentException( "duplicate key id '{$fields[0]}'" );
				}
				$secret = self::decodeSecret( $fields[1] );
				self::checkKey( $fields[0], $secret );
				$keys[$fields[0]] = $secret;
			} catch ( InvalidArgumentException $e ) {
				throw new InvalidArgumentException( "line $number: " . $e->getMessage() );
			}
		}
		if ( !$keys ) {
			throw new InvalidArgumentException( "no keys: expected lines of '<key-id> <secret>'" );
		}
		return new Keyring( $keys, (string)array_key_first( $keys ) );
	}

	/** Read a key file. */
	public static function load( string $path ): Keyring {
		$text = @file_get_contents( $path );
		if ( $text === false ) {
			throw new InvalidArgumentException( "cannot read the key file $path" );
		}
		try {
			return self::fromText( $text );
		} catch ( InvalidArgumentException $e ) {
			throw new InvalidArgumentException( "key file $path: " . $e->getMessage() );
		}
	}
}

/** Builds signed return paths with the keyring's current key. */
final class Signer {
	/** @var Keyring */
	public $keyring;
	/** @var string */
	public $domain;
	/** @var string */
	public $prefix;

	public function __construct( Keyring $keyring, string $domain = 'bounces.example.org',
		string $prefix = 'bounce'
	) {
		$this->domain = Verp::checkNames( $domain, $prefix );
		$this->keyring = $keyring;
		$this->prefix = $prefix;
	}

	/** A signer with the keys of a key file. */
	public static function fromFile( string $path, string $domain = 'bounces.example.org',
		string $prefix = 'bounce'
	): Signer {
		return new Signer( Keyring::load( $path ), $domain, $prefix );
	}

	/**
	 * The signed token; InvalidArgumentException if a field cannot be carried or it does
	 * not fit in 64 octets.
	 *
	 * @param string $subject
	 * @param string $address
	 * @param string|null $stream
	 * @param DateTimeInterface|string|null $day issue day; default: today (UTC)
	 */
	public function sign( string $subject, string $address, ?string $stream = null,
		$day = null
	): Token {
		if ( strpos( $address, '@' ) === false || trim( $address, Verp::WHITESPACE ) === '' ) {
			throw new InvalidArgumentException( 'not an email address: ' . json_encode( $address,
				JSON_UNESCAPED_UNICODE | JSON_INVALID_UTF8_SUBSTITUTE ) );
		}
		if ( $stream !== null && preg_match( Verp::NAME, $stream ) !== 1 ) {
			throw new InvalidArgumentException(
				"stream '$stream' must be non-empty: a-z 0-9 and '-' only" );
		}
		$n = Verp::dayNumber( $day );
		$keyId = $this->keyring->currentId;
		$unsigned = new Token( $keyId, $n, $subject, $stream, Verp::fingerprint( $address ), '' );
		$local = $this->prefix . '-' . $unsigned->unsigned() . str_repeat( 'x', 16 );
		if ( strlen( $local ) > Verp::MAX_LOCAL_PART ) {
			$carried = strlen( Verp::encodeSubject( $subject ) )
				+ ( $stream !== null ? strlen( $stream ) + 1 : 0 );
			$budget = $carried - strlen( $local ) + Verp::MAX_LOCAL_PART;
			throw new InvalidArgumentException( 'return path too long: local part of '
				. strlen( $local ) . " octets > 64; with prefix '{$this->prefix}' and key id "
				. "'$keyId' the subject (as carried) plus '.stream' may use $budget characters, "
				. "here $carried" );
		}
		$mac = $unsigned->computeMac( $this->keyring->keys[$keyId], $this->prefix );
		return new Token( $keyId, $n, $subject, $stream, $unsigned->fingerprint, $mac );
	}

	/**
	 * "<prefix>-<token>@<domain>" for mail to $address.
	 *
	 * @param string $subject
	 * @param string $address
	 * @param string|null $stream
	 * @param DateTimeInterface|string|null $day issue day; default: today (UTC)
	 */
	public function returnPath( string $subject, string $address, ?string $stream = null,
		$day = null
	): string {
		$token = $this->sign( $subject, $address, $stream, $day );
		return "{$this->prefix}-{$token->tokenId()}@{$this->domain}";
	}
}

/** Checks return paths: shape, domain, key id, MAC, then age (in that order). */
final class Verifier {
	public const REASONS = [ 'malformed', 'wrong-domain', 'unknown-key', 'bad-signature',
		'expired', 'future' ];

	/** @var Keyring */
	public $keyring;
	/** @var string */
	public $domain;
	/** @var string */
	public $prefix;
	/** @var int */
	public $maxAgeDays;
	/** @var int */
	public $futureSkewDays;

	public function __construct( Keyring $keyring, string $domain = 'bounces.example.org',
		string $prefix = 'bounce', int $maxAgeDays = 21, int $futureSkewDays = 1
	) {
		if ( $maxAgeDays < 0 || $futureSkewDays < 0 ) {
			throw new InvalidArgumentException(
				'maxAgeDays and futureSkewDays must not be negative' );
		}
		$this->domain = Verp::checkNames( $domain, $prefix );
		$this->keyring = $keyring;
		$this->prefix = $prefix;
		$this->maxAgeDays = $maxAgeDays;
		$this->futureSkewDays = $futureSkewDays;
	}

	/**
	 * The token of a valid return path (any letter case); InvalidToken otherwise.
	 *
	 * @param string $address
	 * @param DateTimeInterface|string|null $today default: today (UTC)
	 */
	public function verify( string $address, $today = null ): Token {
		$text = trim( $address, Verp::WHITESPACE );
		if ( preg_match( '/[\x80-\xFF]/', $text ) === 1 ) {
			throw new InvalidToken( 'malformed', 'address has non-ASCII characters' );
		}
		if ( $text !== '' && $text[0] === '<' && substr( $text, -1 ) === '>' ) {
			$text = substr( $text, 1, -1 );
		}
		$text = strtolower( $text );
		$at = strrpos( $text, '@' );
		$local = $at === false ? '' : substr( $text, 0, $at );
		$domain = $at === false ? '' : substr( $text, $at + 1 );
		if ( $local === '' || $domain === '' ) {
			throw new InvalidToken( 'malformed', 'not an address of the form local@domain' );
		}
		if ( $domain !== $this->domain ) {
			throw new InvalidToken( 'wrong-domain', "domain '$domain' is not '{$this->domain}'" );
		}
		if ( strlen( $local ) > Verp::MAX_LOCAL_PART ) {
			throw new InvalidToken( 'malformed',
				'local part longer than ' . Verp::MAX_LOCAL_PART . ' octets' );
		}
		if ( strncmp( $local, $this->prefix . '-', strlen( $this->prefix ) + 1 ) !== 0 ) {
			throw new InvalidToken( 'malformed', "local part does not start with '{$this->prefix}-'" );
		}
		$token = Token::parse( substr( $local, strlen( $this->prefix ) + 1 ) );
		$key = $this->keyring->keys[$token->keyId] ?? null;
		if ( $key === null ) {
			throw new InvalidToken( 'unknown-key', "unknown key id '{$token->keyId}'" );
		}
		if ( !hash_equals( $token->computeMac( $key, $this->prefix ), $token->mac ) ) {
			throw new InvalidToken( 'bad-signature', 'signature does not match' );
		}
		$age = Verp::dayNumber( $today ) - $token->day;
		if ( $age < -$this->futureSkewDays ) {
			throw new InvalidToken( 'future', "issued {$token->dayIso()}, " . -$age . ' days ahead' );
		}
		if ( $age > $this->maxAgeDays ) {
			throw new InvalidToken( 'expired', "issued {$token->dayIso()}, $age days ago "
				. "(max {$this->maxAgeDays})" );
		}
		return $token;
	}
}
