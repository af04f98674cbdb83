<?php
/**
 * SPDX-License-Identifier: MIT
 */

namespace MediaWiki\Extension\Bounced;

use RuntimeException;

/** The wiki cannot apply the event now (read-only, database busy): bounced retries. */
class EventUnavailable extends RuntimeException {
}
