<?php
/**
 * SPDX-License-Identifier: MIT
 */

namespace MediaWiki\Extension\Bounced;

use RuntimeException;

/** The request or event is not one of bounced's (bad JSON, missing fields). */
class InvalidEvent extends RuntimeException {
}
