<?php
/**
 * The wiki's side of the loop: sign the return path of mail to a user's confirmed address
 * (UserMailerChangeReturnPath), and tell bounced when a user confirms an address again
 * (ConfirmEmailComplete, reported once UserSaveSettings has saved it), so the bounces
 * before it stop counting.
 *
 * SPDX-License-Identifier: MIT
 */

namespace MediaWiki\Extension\Bounced;

use Bounced\Verp\Keyring;
use Bounced\Verp\Signer;
use Bounced\Verp\Verp;
use Config;
use DeferredUpdates;
use MailAddress;
use MediaWiki\Hook\UserMailerChangeReturnPathHook;
use MediaWiki\Http\HttpRequestFactory;
use MediaWiki\Logger\LoggerFactory;
use MediaWiki\User\Hook\ConfirmEmailCompleteHook;
use MediaWiki\User\Hook\UserSaveSettingsHook;
use MediaWiki\User\UserFactory;
use Psr\Log\LoggerInterface;
use Throwable;
use User;

class Hooks implements
	UserMailerChangeReturnPathHook,
	ConfirmEmailCompleteHook,
	UserSaveSettingsHook
{
	/** @var Config */
	private $config;
	/** @var UserFactory */
	private $userFactory;
	/** @var HttpRequestFactory */
	private $httpRequestFactory;
	/** @var LoggerInterface */
	private $logger;
	/** @var Signer|false|null the signer; false once it failed to load (logged once) */
	private $signer = null;
	/** @var true[] ids of users who confirmed an address in this request, not yet saved */
	private $confirmed = [];

	public function __construct( Config $config, UserFactory $userFactory,
		HttpRequestFactory $httpRequestFactory
	) {
		$this->config = $config;
		$this->userFactory = $userFactory;
		$this->httpRequestFactory = $httpRequestFactory;
		$this->logger = LoggerFactory::getInstance( 'Bounced' );
	}

	/**
	 * Sign the return path when the message goes to exactly one recipient whose address is
	 * that user's confirmed address: the token names the user (subject = user id) and the
	 * address. Anything else keeps the wiki's return path. Never fails the mail.
	 *
	 * @param MailAddress[] $to
	 * @param string &$returnPath
	 * @return void
	 */
	public function onUserMailerChangeReturnPath( $to, &$returnPath ) {
		if ( count( $to ) !== 1 || !( $to[0] instanceof MailAddress ) ) {
			return;
		}
		$recipient = $to[0];
		// MailAddress::newFromUser() names the user; other mail names no wiki account.
		$user = $this->userFactory->newFromName( (string)$recipient->name );
		if ( $user === null || !$user->isRegistered()
			|| $user->getEmailAuthenticationTimestamp() === null
			|| !self::sameAddress( $user->getEmail(), (string)$recipient->address )
		) {
			return;
		}
		$signer = $this->signer();
		if ( $signer === null ) {
			return;
		}
		try {
			$returnPath = $signer->returnPath( (string)$user->getId(), $recipient->address,
				$this->config->get( 'BouncedStream' ) );
		} catch ( Throwable $e ) {
			$this->logger->error( 'Bounced: return path for user {user} not signed: {error}',
				[ 'user' => $user->getId(), 'error' => $e->getMessage() ] );
		}
	}

	/**
	 * A user confirmed an address (User::confirmEmail(), before saveSettings()): remember
	 * it, to report once it is saved.
	 *
	 * @param User $user
	 * @return void
	 */
	public function onConfirmEmailComplete( $user ) {
		if ( $this->config->get( 'BouncedUrl' ) && $user->isRegistered() ) {
			$this->confirmed[$user->getId()] = true;
		}
	}

	/**
	 * The confirmation is saved: report it to bounced after the request's transaction
	 * commits, so bounces before it stop counting. A failure is logged; the confirmation
	 * stands either way.
	 *
	 * @param User $user
	 * @return void
	 */
	public function onUserSaveSettings( $user ) {
		$id = $user->getId();
		if ( !isset( $this->confirmed[$id] ) || $user->getEmailAuthenticationTimestamp() === null ) {
			return;
		}
		unset( $this->confirmed[$id] );
		$url = (string)$this->config->get( 'BouncedUrl' );
		DeferredUpdates::addCallableUpdate( function () use ( $url, $id ) {
			$this->reconfirm( $url, $id );
		} );
	}

	/** POST /v1/subjects/ID/reconfirm; false (and a log line) when bounced did not take it. */
	public function reconfirm( string $url, int $id ): bool {
		$endpoint = rtrim( $url, '/' ) . '/v1/subjects/' . $id . '/reconfirm';
		try {
			$request = $this->httpRequestFactory->create( $endpoint, [
				'method' => 'POST', 'postData' => '', 'timeout' => 10, 'connectTimeout' => 5,
			], __METHOD__ );
			$request->setHeader( 'Authorization',
				'Bearer ' . $this->config->get( 'BouncedHttpToken' ) );
			$status = $request->execute();
			if ( $status->isOK() ) {
				$this->logger->info( 'Bounced: reconfirmed user {user} at {url}',
					[ 'user' => $id, 'url' => $endpoint ] );
				return true;
			}
			$why = 'HTTP ' . $request->getStatus() . ' '
				. trim( substr( (string)$request->getContent(), 0, 200 ) );
			if ( !$request->getStatus() ) {
				// No HTTP answer: the first parameter of the error is the transport's words.
				$error = $status->getErrors()[0] ?? [];
				$why = (string)( $error['params'][0] ?? $error['message'] ?? 'no answer' );
			}
		} catch ( Throwable $e ) {
			$why = get_class( $e ) . ': ' . $e->getMessage();
		}
		$this->logger->error( 'Bounced: reconfirm of user {user} failed ({url}): {error}',
			[ 'user' => $id, 'url' => $endpoint, 'error' => $why ] );
		return false;
	}

	/** The signer of the configuration, or null (logged once) when it is incomplete. */
	private function signer(): ?Signer {
		if ( $this->signer === null ) {
			$keyFile = $this->config->get( 'BouncedKeyFile' );
			$domain = $this->config->get( 'BouncedDomain' );
			if ( !$keyFile || !$domain ) {
				$this->signer = false;
				$this->logger->debug( 'Bounced: $wgBouncedKeyFile or $wgBouncedDomain unset: '
					. 'return paths are not signed' );
				return null;
			}
			try {
				$this->signer = new Signer( Keyring::load( (string)$keyFile ), (string)$domain,
					(string)$this->config->get( 'BouncedPrefix' ) );
			} catch ( Throwable $e ) {
				$this->signer = false;
				$this->logger->error( 'Bounced: return paths are not signed: {error}',
					[ 'error' => $e->getMessage() ] );
			}
		}
		return $this->signer ?: null;
	}

	/** The same address as the fingerprint sees it (whitespace around, letter case). */
	private static function sameAddress( string $a, string $b ): bool {
		$normal = static function ( string $address ): string {
			return Verp::isUtf8( $address ) ? Verp::lower( trim( $address, Verp::WHITESPACE ) ) : $address;
		};
		return $a !== '' && $normal( $a ) === $normal( $b );
	}
}
