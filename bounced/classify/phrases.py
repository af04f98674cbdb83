"""Phrase tables: what a diagnostic says, mapped to a reason.

Data only. ``WORDINGS`` groups lowercase wordings by reason (a key "reason", or
"reason/aspect" when a reason's wordings are read at more than one priority), matched as
substrings of the normalised diagnostic; ``PRIORITY`` is the order the groups are searched
in, and the first group with a wording in the text decides: reasons about the mailbox's
state (full, disabled, moved) come first, then what blames the sender (relaying,
authentication, reputation, blocklists, spam), then "the address does not exist", and the
vague words (rejected, refused, policy) last. tests/test_classify_phrases.py checks that
every group is in the order once and that no wording is repeated or shadowed (contains a
wording of its own or an earlier group: it could never decide). Keep wordings general:
each should read like something many mail systems say (Postfix, Exim, Sendmail, qmail,
Exchange, Gmail, Yahoo, Outlook.com, Courier, Domino, appliances), never a string only one
message in the world contains; one system's own replies go to its module in
``bounced.classify.systems``.

A "user unknown" phrase alone is weighed by ``bounced.classify.rules`` (the stage, the
status, whether a content filter gave it).
"""

from __future__ import annotations

from bounced.classify.systems import SYSTEMS

# The vaguest words of refusal: the last entry of the table, so any other reason is
# more specific than they are.
VAGUE: tuple[str, ...] = ("refused", "not allowed", "rejected", "denied", "rejete")

WORDINGS: dict[str, tuple[str, ...]] = {
    "rejected/posting": (  # the sender may not post here (mailing lists, groups)
        "permission to post", "not allowed to post",
        "only members can post", "posting is restricted", "投稿する権限",
        # the same in the languages of mailing-list and group services' notices
        "nemáte oprávnění",  # cs
        "δικαίωμα ανάρτησης",  # el
        "مجوز لازم برای ارسال پیام",  # fa
        "אין לך אישור לפרסם",  # he
        "संदेश पोस्ट करने की अनु",  # hi
        "не маєте дозволу публікувати",  # uk
        "не имеете права публиковать",  # ru
        "pas autorisé à lui envoyer", "pas autorisé à publier",  # fr
        "nicht berechtigt, nachrichten", "keine berechtigung zum posten",  # de
        "permiso para publicar",  # es
        "permissão para postar",  # pt
        "non hai l'autorizzazione",  # it
    ),
    # The phrases below the mailing-list entry and before the mailbox ones come from the
    # reason tables of sisimai (the analyser whose vocabulary this is, BSD-2-Clause), where
    # ours said nothing or named a reason that would count against the recipient.
    "ratelimited/our-sending": (  # the provider throttles our sending: not the recipient's quota
        "relay limit exceeded", "sending limit exceeded", "too many messages this hour",
        "throttling failure", "max emails per hour", "connection rate limit",
        "too many errors from your ip", "trop de connexions",
        "sending quota",  # "daily user sending quota exceeded": ours, not a mailbox's quota
        # Exchange Online's 5.1.90: our sending account's recipients per day
        "reached your daily limit", "daily limit for message recipients",
        # a harvest guard: our IP named too many addresses that do not exist (the addresses
        # of this message are not said to be among them)
        "too many invalid recipients", "too many unknown recipients", "too many bad recipients",
    ),
    "rejected/our-sender": (  # our envelope sender or return path refused, however the words go on
        "is not a registered gateway user", "does not exist e2110",
        "backscatter protection detected an invalid or expired",
        "batv failed to verify", "batv validation failure", "batv: no tag",
        "no third-party dsns", "unsigned dsn for", "returned mail not accepted here",
        "emetteur invalide", "émetteur invalide", "sender not pre-approved",
        "fully qualified email address required", "rule imposed mailbox access for",
        "envelope blocked", "does not accept mail from", "does not accept email from",
        "does not accept e-mail from", "doesn't accept mail from", "doesn't accept email from",
        "sender is in my black list",
        "sender blacklisted", "sender address has been blacklisted",
        "to/from an address that has been blacklisted", "invalid domain, see <url:",
        "senderfilterconfig", "valid-address-filter",
    ),
    "filtered/recipient": (
        "recipient preferences", "refused due to recipient", "rejected by recipient",
        "recipient has blocked", "blocked by recipient", "blocked by the recipient",
        "only accepting mail from specific", "user refuses to receive", "refuse to receive",
        "message rejected due to user rules", "domain filter", "has restricted sms",
        "this account is protected by",
        "is not accepting any mail", "user reject", "bounced address",

        # the recipient refuses this sender ("... could not be delivered because they are
        # not accepting mail from you@example.org", AOL): its choice, not a dead address
        "are not accepting mail from", "is not accepting mail from",
    ),
    "systemfull/mailbox": ("not enough free space",),  # "mailbox unavailable (not enough ...)"
    "mailboxfull": (
        "mailbox full", "mailbox is full", "mailbox was full", "mailbox is over", "over quota",
        "overquota", "exceeded quota", "exceeds quota", "quota exceed",
        "over the quota", "over its quota", "exceed the quota", "exceeded storage",
        "exceeds storage", "mailbox size limit", "full mailbox", "mailbox has exceeded",
        "mailbox exceeded", "mailbox exceeds", "storage quota", "account is full", "inbox is full",
        "mailfolder is full", "mail folder is full", "quota full", "disk quota",
        "user is over", "too many messages in", "not enough storage", "insufficient storage",
        "space not enough", "not enough space on the mailbox", "mail box full",
        "mailbox would exceed", "would exceed quota",
        "mailbox has reached", "mailbox quota", "user quota", "容量",
        "exceeding their quota", "over the allowed quota", "does not have enough space",
        "space has been used up", "too much mail data", "too many messages on the server",
        "mail file size exceeds the maximum size", "quota violation",
        "exceeding receiving limits", "boite du destinataire pleine",
        # the same in the languages of the providers' own reports ("the mailbox is full")
        "メールボックスがいっぱい",  # ja ("容量" above: ja, zh)
        "邮箱已满", "郵箱已滿", "信箱已满", "信箱已滿", "邮箱空间不足", "邮箱满",  # zh
        "메일함 용량", "메일함이 가득", "편지함 용량", "편지함이 가득", "사서함이 가득",  # ko
        "ящик переполнен", "ящик получателя переполнен", "превышен размер почтового ящика",
        "квота превышена", "превышена квота",  # ru
        "postfach voll", "postfach ist voll", "postfach des empfängers ist voll",
        "postfach des empfaengers ist voll", "kontingent überschritten",  # de
        "boîte pleine", "boite pleine", "boîte aux lettres pleine", "boite aux lettres pleine",
        "boîte aux lettres est pleine", "boîte aux lettres du destinataire est pleine",
        "boite aux lettres du destinataire est pleine", "quota dépassé",  # fr
        "buzón lleno", "buzon lleno", "buzón está lleno", "buzon esta lleno",
        "buzón del destinatario está lleno", "buzon del destinatario esta lleno",
        "cuota excedida",  # es
        "caixa postal cheia", "caixa cheia", "caixa de correio cheia",
        "caixa postal está cheia", "caixa postal do destinatário está cheia",
        "cota excedida",  # pt
        "casella piena", "casella postale piena", "casella di posta piena",
        "casella è piena", "quota superata",  # it
        "skrzynka pełna", "skrzynka jest pełna", "skrzynka odbiorcy jest pełna",
        "skrzynka odbiorcy przepełniona", "skrzynka przepełniona",  # pl
        "schránka je plná", "plná schránka", "schránka příjemce je plná",  # cs
        "kutusu dolu",  # tr ("posta kutusu dolu")
        "mailbox vol", "mailbox is vol", "postbus vol", "postbus is vol",
        "mailbox van de ontvanger is vol",  # nl
    ),
    "emailtoolarge": (
        "size limit",
        "email size exceeded", "maximum email size",
        "message too large", "message too big", "message is too large", "message is too big",
        "message size exceeds", "exceeds maximum message size",
        "message length exceeds", "size of the message exceeds",
        "message exceeds the maximum size", "message is larger than",
        "exceeds administrative limit",  # RFC 3463's X.2.3 text: the receiver's own limit
        "maximum inbound message size", "max message size exceeded", "message file too big",
        "taille limite du message atteinte",
        "line limit exceeded", "line too long", "line length exceeded",  # a line, not the mailbox
    ),
    # the recipient receives too much (before exceedlimit's "limit exceeded")
    "speeding/recipient": (
        "receive limit", "ratelimit exceeded for mailbox", "rate limit exceeded for mailbox",
    ),
    # a rate of ours limited (after the recipient's "rate limit exceeded for mailbox", before
    # exceedlimit's "limit exceeded")
    "ratelimited/rates": ("rate limit exceeded", "ratelimit exceeded", "rate-limit exceeded"),
    "exceedlimit": (
        "exceeds limit", "exceeded limit", "limit exceeded",
        "header size exceeds", "recipient limit",
    ),
    "suspend": (
        "currently suspended",
        "account is blocked", "account isblocked", "compte du destinataire est bloque",
        "account disabled",
        "mailbox disabled",
        "account suspended", "account is suspended",
        "mailbox suspended", "mailbox is suspended",
        "recipient suspended", "user suspended", "account inactive", "account is inactive",
        "inactive account", "mailbox inactive", "mailbox is inactive", "inactive mailbox",
        "mailbox unavailable or inactive", "deactivated", "account expired",
        "account has expired", "account is locked", "account locked", "mailbox is frozen",
        "account frozen", "account is frozen", "disabled or discontinued",
        "has been disabled", "is disabled", "temporarily disabled", "not currently active",
        "account is not active", "mailbox is not active",
        "tried to reach is inactive", "inactivity",
        "has been suspended", "temporary locked",
        "temporarily locked", "invalid/inactive user", "temporarily inactive",
        "recipient suspend the service", "boite du destinataire archivee",
        "mailbox unavailable or access denied",  # not "unavailable": it may be closed or barred
        "user not active", "mailbox is locked", "account is expired",
        "mailbox is not accepting mail", "account is not accepting mail",
        "deaktiviert", "postfach gesperrt", "postfach ist gesperrt",  # de
        "compte désactivé", "boîte désactivée",  # fr
        "cuenta desactivada", "cuenta suspendida",  # es
        "conta desativada", "conta suspensa",  # pt
        "casella disattivata", "account disattivato", "casella sospesa",  # it
    ),
    "hasmoved": (
        "has moved", "has been moved", "address has changed", "address has been changed",
        "no longer valid, please use",
        "user not local; please try", "not local, please try",  # RFC 5321's 551 reply
        "has been replaced by",
    ),
    "norelaying": (
        "relay access denied", "relaying denied", "relay denied", "relay not permitted",
        "relaying not permitted", "unable to relay", "not permitted to relay", "we do not relay",
        "relaying not allowed", "relay not allowed", "no relaying", "relaying mail to",
        "does not relay", "cannot relay", "not configured to relay", "relay prohibited",
        "relaying is prohibited", "relaying disallowed", "not allowed to relay",
        "insecure mail relay", "relay not authorized", "open relay",

        "as a relay",  # "you are trying to use me as a relay" (MessageLabs, qmail patches)
        "not a gateway", "not local host", "we don't handle mail for",
        "send to a non-local e-mail address",  # "... requires authentication when ..."
    ),
    "failedstarttls": (
        "tls required", "requires tls", "requires encryption", "must issue a starttls",
        "over a tls connection", "tls version 1.2 or greater",
        "does not support tls", "does not support starttls", "starttls failed",
        "tls negotiation failed", "tls handshake failed", "failed to establish tls",
        "could not start tls", "tls connection failed", "starttls is not supported",

    ),
    "securityerror": (
        "password not accepted",
        "authentication required", "authentication is required", "must authenticate",
        "unauthenticated senders", "sender not authenticated",
        "requires authentication", "authentication failed", "auth required",
        "delivery not authorized",  # RFC 3463's own text for X.7.1
        "authentication failure", "authentication credentials invalid",
        "invalid user or password", "invalid username or password",
        "authentication turned on in your email client", "not subscribed to ses",
        "not authorized to perform ses:",
    ),
    "authfailure": (
        "spf unauthorized", "spf sender invalid",
        "spf check", "spf mail from check", "spf fail", "spf=fail", "spf: fail", "failed spf",
        "spf validation", "spf verification", "spf permerror", "spf softfail", "spf record",
        "spf policy",
        "sender policy framework", "not authorized to send on behalf",
        "domain owner has published", "dkim fail", "dkim check", "dkim verification",
        "dkim signature", "failed dkim", "dkim=fail", "invalid dkim", "dmarc",
        "authentication check", "authentication requirements", "authentication level",
        "unauthenticated email", "unauthenticated mail",
        "not designated as permitted sender", "is not a permitted sender",
        "is unauthenticated", "spf or dkim", "authenticate with spf", "authenticate with dkim",
        "spf settings",
    ),
    "requireptr": (
        "reverse dns", "reverse-dns", "reverse lookup", "rdns", "ptr record", "no ptr",
        "ptr resource record", "dns ptr",
        "ptr lookup", "ptr-record", "no reverse", "cannot find your hostname",
        "cannot find your reverse", "cannot resolve your hostname", "hostname lookup failed",
        "ip name lookup failed", "not resolve your address", "reverse mapping",
        "no dns record for your ip", "dns name of your ip", "mismatches client ip",
        "does not match your ip", "client host name", "reverse name",
        "unverifyable sending ip",  # "service permits 2 unverifyable sending IPs - a is not b"
    ),
    "notcompliantrfc": (
        "missing message-id", "invalid message-id", "missing required header",
        "rfc 5322", "rfc5322", "rfc 2822", "rfc2822", "rfc822 compliant", "rfc 822",
        "duplicate header", "not rfc compliant", "not compliant with rfc",
        "multiple addresses in from", "must not contain more than one",
        "improperly formatted message", "message is not rfc",
        "missing a valid address in from", "no from: header", "no from header",
    ),
    "badreputation": (
        "reputation", "low sender score",
    ),
    "blocked/our-ip": (  # our sending host refused, in words that also say spam
        "spams from your ip", "spam from your ip", "unusual rate of unsolicited",
        "not in whitelist", "not authorized to send email directly",
    ),
    "virusdetected": (
        "virus", "malware", "infected", "trojan", "worm detected",
    ),
    "spamdetected/links": (  # a listed link in the content, not the sender's IP
        "blacklisted url", "blacklisted link", "uribl", "surbl", "dbl.spamhaus",
    ),
    "blocked/blocklists": (  # DNS blocklists (their names contain "spam")
        "blocked using", "spamhaus", "spamcop", "sorbs", "dnsbl", "blacklist", "blocklist",
        "is listed", "are listed", "listed on", "listed at", "listed by",
    ),
    "spamdetected": (
        "spam", "junk mail", "unsolicited", "bulk mail",
        "content rejected", "scored too high", "suspicious content", "phish",
        "content denied",
        "bulk email", "bulk.advertising", "rejecting mail content", "using a mass mailer",
    ),
    "ratelimited/connections": (
        "too many connections", "too many concurrent", "connection rate", "connection limit",
        "too many simultaneous", "too many sessions", "max connections", "maximum connections",
        "too many smtp sessions", "concurrent connections", "frequency limited",
        "connection frequency", "too many open connections",
    ),
    "speeding": (
        "too many recipients this hour", "rate limit", "ratelimit", "rate-limit",
        "sending rate", "too fast", "throttl", "unusual rate", "too many messages from",
        "rate that prevents", "receiving mail at a rate", "exceeded the rate",
        "too quickly",
    ),
    "ratelimited/recipients": (  # after speeding: "too many recipients this hour" is speeding
        "too many recipients",
    ),
    "blocked": (

        "block list", "black list", "denylist",
        "rbl", "barracudacentral", "abuseat", "uceprotect",
        "your ip", "host rejected", "ip blocked", "ip address blocked",
        "blocked ip", "refused to talk to me", "is not allowed to send", "not allowed to connect",
        "banned", "has been blocked", "have been blocked", "was blocked", "is blocked",
        "temporarily deferred", "dynamic ip", "dial-up", "dialup", "residential",
        "helo command rejected", "ehlo command rejected", "invalid helo", "bad helo",
        "helo name", "helo hostname", "helo/ehlo", "ehlo name", "ehlo hostname", "in helo",
        "in ehlo",
        "not accepting connections",
        "rejected because of ip", "connection rejected", "sender ip", "invalid ip",
        "mail server is not authorized",
        "service unavailable; client host", "not authorized to send mail",
        "smtp server of your isp", "your network",
        "not accepted from this ip", "ip is rejected", "ip rejected",
        "your host", "your server", "your mail server",
        "access denied for ip", "ip address has been", "connection refused from",
        # sisimai's Blocked wordings (its 4.25 tables) that the lines above missed
        "no valid recipients from", "access from ip address", "blocked - see http",
        "extreme bad ip profile", "go away", "no access from mail server",
        "rejecting open proxy", "listed as abusive",
        # the receiving host dropped our connection ("Connection reset by peer"; a refused
        # connection is a network error, however an MTA words it: Sendmail's "Connection
        # refused by host" is its text for the same refusal as Postfix's "connect to host:
        # Connection refused", both written when nothing listens on the port)
        "connection reset by peer",
        "unwanted messages have been sent from the following ip", "unresolvable relay host",
    ),
    "policyviolation": (
        "illegal attachment", "does not allow external forwarding",
        "violates", "security policies",

        "prohibited", "potential security issue",
        "policy", "not permitted", "restricted", "violation",

        "header error",  # a header the receiving system will not take
        "content restriction",
        "is not accepting mail with",  # "the recipient is not accepting mail with ..."
        "are not accepting mail with",
    ),
    "notaccept": (
        "null mx", "does not accept mail", "doesn't accept mail", "does not receive mail",
        "doesn't receive email", "does not receive email",
        # (not "not accepting mail" alone: a recipient or server "is not accepting mail at
        # this time" is not a domain that takes no mail)
        "domain is not accepting mail", "domain not accepting mail",
        "accepts no mail", "no mail accepted", "domain does not accept", "not accept any mail",
        "accept no mail", "no mx", "couldn't find a mail exchanger",
        "could not find a mail exchanger", "no mail exchanger", "mx lookup",

    ),
    # a local delivery program (a pipe, a filter) that failed: its failure is the mail system's,
    # whatever else the words say (Exim: "Child process of address_pipe transport returned
    # 127 (could mean unable to exec or command does not exist)")
    "mailererror/program": ("child process of", "unable to exec", "command does not exist"),
    "networkerror/lookup": (  # a name lookup that failed for now, not a domain shown not to exist
        "host not found, try again", "unable to resolve route", "name server reply",
        "dns records for the destination computer could not be found",
    ),
    "hostunknown": (
        "host unknown", "unknown host", "host not found", "domain not found", "no such domain",
        "domain does not exist", "domain doesn't exist", "name or service not known",
        "unrouteable mail domain", "domain name not found",
        "nxdomain", "unknown domain", "couldn't find any host", "could not find any host",
        "invalid domain", "domain is not valid", "not a valid domain", "unresolvable domain",
        "host name lookup failure", "domain unknown", "unable to resolve", "no such host",
        "non-existent domain", "nonexistent domain", "domain lookup failed",
        "dns lookup failed", "domain is not reachable", "domain could not be found",
        "recipient domain does not", "domain may not exist",
        "recipient domain must exist", "domain mentioned in email address is unknown",
        "unroutable address",

        "remote domain doesnt exist",

        "ドメインが存在しません", "域名不存在", "도메인이 존재하지 않", "домен не найден",
        "домен не существует", "domain existiert nicht", "domäne existiert nicht",
        "domaine inexistant", "domaine n'existe pas", "dominio no existe",
        "dominio inexistente", "domínio não existe", "domínio inexistente",
        "dominio non esiste", "dominio inesistente", "domena nie istnieje",
        "doména neexistuje", "domein bestaat niet",
    ),
    "userunknown": (
        "user unknown", "unknown user", "no such user", "user not found", "unknown recipient",
        "recipient unknown", "no such mailbox", "mailbox not found",
        "doesn't exist", "not exist", "invalid recipient",
        "no mailbox", "invalid mailbox",
        "no such recipient", "recipient not found", "unknown local part", "unknown address",
        "address unknown", "user doesn't", "not a valid mailbox", "no such account",
        "bad destination mailbox", "undeliverable address", "is not a known user",
        "unknown or illegal alias", "user not known", "non-existent", "nonexistent",
        "no such person", "not have an account", "address not found", "invalid address",
        "unknown mailbox", "not our customer", "not a valid user",
        "user invalid", "no valid recipients", "no such address", "unknown account",
        # (not "does not have a" alone: "... does not have a mail system running", "does not
        # have a valid PTR record" are no dead address)
        "doesn't have a mailbox", "does not have a mailbox", "does not have a final",
        "name is not recognized", "mailbox not available",
        "mailbox unavailable",  # RFC 5321's own 550 text; a reason only at RCPT (reasons.py)
        "recipient address rejected: access denied",  # Exchange Online: not in the directory
        "not a registered", "invalid final delivery userid", "invalid user",
        "bad recipient", "mailbox is unavailable", "no such local user",
        # (not "recipient is not ..." alone: "... authorized", "local", "accepting mail")
        "recipient is not valid", "recipient is not known", "recipient is not found",
        "unknown to", "not a valid recipient",
        "check if address is correct", "check if the address is correct",


        # the same in the languages of European and Russian mail systems' own replies
        "benutzer unbekannt", "unbekannter benutzer", "unbekannter empfänger",
        "empfänger unbekannt", "empfaenger unbekannt",
         # de
        "utilisateur inconnu", "destinataire inconnu",  # fr
        "usuario desconocido", "destinatario desconocido",  # es
        "usuário desconhecido", "destinatário desconhecido",  # pt
        "utente sconosciuto",  # it
        "gebruiker onbekend", "onbekende gebruiker",  # nl
        "nieznany użytkownik", "неизвестный пользователь", "нет такого пользователя",
        # "(the user) does not exist / was not found" in the languages of the providers'
        # own reports (the domain's own words come first, under hostunknown)
        "該当するユーザーがいません", "該当ユーザーがいません", "ユーザーが存在しません",
        "ユーザが存在しません", "ユーザーが見つかりません", "メールボックスは存在しません",
        "メールボックスが存在しません", "アドレスが存在しない", "アカウントが存在しません",
        "宛先不明",  # ja
        "用户不存在", "用戶不存在", "收件人不存在", "邮箱不存在", "郵箱不存在", "信箱不存在",
        "帐号不存在", "账号不存在", "帳號不存在", "帐户不存在", "账户不存在", "地址不存在",  # zh
        "사용자가 존재하지 않", "존재하지 않는 사용자", "존재하지 않는 계정", "계정이 존재하지 않",
        "주소가 존재하지 않", "받는 사람을 찾을 수 없", "수신자를 찾을 수 없",  # ko
        "пользователь не найден", "адресат не найден", "получатель не найден",
        "ящик не найден", "ящик не существует", "адрес не существует",
        "пользователь не существует", "несуществующ",  # ru
        "existiert nicht",  # de
        "n'existe pas", "n\u2019existe pas", "inexistant",  # fr
        "no existe", "não existe", "nao existe", "inexistente",  # es pt
        "non esiste", "inesistente",  # it
        "nie istnieje", "nieznany adresat", "nieznany odbiorca",  # pl
        "neexistuje", "neznámý příjemce", "neznámý uživatel",  # cs
        "kullanıcı bulunamadı", "kullanici bulunamadi", "alıcı bulunamadı",  # noqa: RUF001
        "alici bulunamadi", "böyle bir kullanıcı yok",  # tr  # noqa: RUF001
        "bestaat niet", "onbekende ontvanger", "ontvanger onbekend",  # nl
        # the reporting system's own "was not found" ("the recipient mailbox was not found")
        "mailbox was not found", "recipient was not found", "user was not found",
        "address was not found", "mailbox is not found", "user is not found",
        "address is not found", "account is not found", "addressee unknown", "mailbox unknown",
        # sisimai's UserUnknown wordings (its 4.25 tables) that the lines above missed
        "5.1.1 bad address", "> not found", "address invalid", "address not present in directory",
        "archived recipient", "bad-recipient", "bad_recipient", "can't accept user",
        "addresses were unknown", "email address could not be found",
        "is not an active address at this host", "mailbox invalid", "mailbox not present",
        "nessun utente simile", "no account by that name",
        "no mail box available for this user", "no matches to nameserver query",
        "non existent user", "recipient not ok",
        "badrecipientto", "email name is not found", "there is no one at this address",
        "wrong or no longer valid", "user doesnt have a", "unknown e-mail address",
        "unknown email address", "unknown local-part", "unknown virtual user",
        "invalid-recipient",


    ),
    "filtered/filter": (
        "filter", "refuses", "recipient refused", "blocked the sender",
        "message refused", "recipient does not accept",
    ),
    "rejected/sender": (
        "sender rejected", "domain of sender", "sender verify",
        "sender verification", "envelope sender", "sender domain", "invalid sender",
        "sender unknown", "unknown sender", "bad sender", "sender address", "return path",
        "return-path", "sender is", "senders", "not verified",
        "mail from", "valid from:", "from: domain",  # the From: header's address or domain
        "expéditeur", "expediteur", "absender", "remitente", "mittente",  # "sender" (fr de es it)
    ),
    "contenterror": (
        "media error", "mime part", "mime type", "mime structure", "mime format",
        "mime header", "invalid mime", "malformed mime", "mime-version", "binary content",
        "base64 encoding", "improperly-formatted", "invalid character",
        "8bit", "8-bit", "charset", "content-type", "file type", "attachment",
        "headers too", "header too",
        'too many "received" headers',
    ),
    "syntaxerror": (
        "command not implemented", "parameter not implemented",
        "syntax error", "command unrecognized", "bad command", "unrecognized command",
        "invalid command", "command not recognized", "may not follow", "bad sequence",
        "out of sequence", "must follow",
        "angle-brackets nested too deep", 'expected word or "<"',
        "domain missing in source-routed address", "malformed address:",
    ),
    # a session that broke, in one system's words that would otherwise read as a local
    # program's failure (bounced.classify.systems: Courier's "<command failed>")
    "networkerror/session": (),
    "mailererror": (
        "exit status",
        "mailer error", "command failed", "program failed", "procmail", "exit code",
        "command died", "pipe to", "unknown mailer", "local delivery failed",
        "mail program", "x-unix", "couldn't create", "could not create",
        "no such file or directory", "generated by",
        "bin/maildrop", "command output:",
    ),
    "systemfull": (
        "mail system is full", "insufficient system resources",
        "system full", "insufficient system storage", "out of disk", "disk full",
        "no space left", "disk space",
    ),
    "expired": (
        "retry timeout exceeded", "queue lifetime",
        "too long in queue", "cannot send message for", "could not be delivered for",
        "could not be delivered within", "retry time not reached",
        "was not delivered within", "retry period", "failing for a long time",
        "in the queue too long", "been in the queue", "could not deliver for the last",
        "retries exceeded", "expired",
        "could not find a gateway for", "delivery attempts will continue",
        "has been delayed", "it has not been collected after",
        "server did not respond", "after multiple retries", "failed to deliver to domain",
    ),
    "networkerror": (
        "timed out", "timeout", "connection refused", "no route to host",
        "network is unreachable", "lost connection", "connection reset", "could not connect",
        "unable to connect", "connect to", "mail loop", "forwarding loop", "loop detected",
        "loops back",
        "routing loop", "too many hops", "connection closed", "network error", "dns error",
        "temporary lookup failure", "conversation with", "socket error", "did not accept our",
        "unable to contact", "protocol error", "connection dropped", "not reachable",
        "message looping",
        "had no relevant answers", "maximum hop count", "address family mismatch",
        "all routes to destination blocked", "bad dns lookup error code",
        "could not retrieve source address", "no valid route to",
        "wasn't able to establish an smtp connection",

    ),
    "systemerror": (
        "temporarily rejected",
        "system error", "internal error", "local error", "server error", "temporary failure",
        "try again later", "temporarily unavailable",
        "system not accepting", "service unavailable", "server configuration", "queue file",
        "transaction failed", "could not load", "upstream error",
        "service currently unavailable", "mail system problem", "configuration error",
        "i/o error", "write error", "try later",
        "interrupted system call", "encountered an error while being processed",
        "service not available",  # RFC 5321's 421 text ("closing transmission channel")
        "loop was found in the mail exchanger", "remote server is misconfigured",
        "system config error", "temporary local problem", "can't create user output file",
        "delivery to file forbidden", "delivery to pipe forbidden", "lmtp error after",
        "temporary mta failure on relaying",
    ),
    "rejected/vague": VAGUE,
}

# The order in which the groups are searched: the first group with a wording in the
# diagnostic decides (its reason: the key before "/"). Reasons about the mailbox's
# state come first, then what blames the sender, then "the address does not exist",
# and the vague words last.
PRIORITY: tuple[str, ...] = (
    "rejected/posting", "ratelimited/our-sending", "rejected/our-sender", "filtered/recipient",
    "systemfull/mailbox", "mailboxfull", "emailtoolarge", "speeding/recipient", "ratelimited/rates",
    "exceedlimit",
    "suspend", "hasmoved", "hostunknown/unroutable", "norelaying", "failedstarttls",
    "securityerror", "authfailure", "requireptr", "notcompliantrfc", "badreputation",
    "blocked/our-ip", "virusdetected", "spamdetected/links", "blocked/blocklists",
    "spamdetected", "ratelimited/connections", "speeding", "ratelimited/recipients", "blocked",
    "policyviolation", "notaccept", "mailererror/program", "networkerror/lookup", "hostunknown",
    "userunknown",
    "filtered/filter", "rejected/sender", "contenterror", "syntaxerror", "networkerror/session",
    "mailererror", "systemfull", "expired", "networkerror", "systemerror", "rejected/vague",
)

# A mail system's own wordings live in its module (bounced.classify.systems): each is added
# to its group here, so adding a system's wording touches that system's file only.
for _system in SYSTEMS:
    for _key, _words in _system.phrases:
        WORDINGS[_key] = WORDINGS.get(_key, ()) + _words

# The phrase table as the phrase index reads it: (reason, wordings), in priority order.
PHRASES: tuple[tuple[str, tuple[str, ...]], ...] = tuple(
    (key.partition("/")[0], WORDINGS[key]) for key in PRIORITY)

# A refusal that names the envelope sender as what was refused ("<a@b>: Sender address
# rejected: Domain not found", Postfix's answer at RCPT TO): an unknown user or domain in
# the words is the sender's, never the recipient's.
SENDER_REFUSED: tuple[str, ...] = (
    "sender address rejected", "sender rejected", "sender verify failed",
    "sender verification failed", "domain of sender address", "sender domain not found",
    "sender domain does not exist", "unverified sender", "sender address invalid",
    "sender address is invalid", "sender address does not exist", "sender does not exist",
    "unknown sender domain", "sender domain unknown", "sender's domain does not",
    "sender domain has no", "your domain", "return path", "return-path", "from: address",
    "domain of the sender",
    "from: domain",
)

# A refusal of the recipient with no reason given ("550 <addr>: Recipient address
# rejected."): at RCPT TO, or with an address status (X.1.0), the address is unknown.
# A regular expression over the normalised lowercase diagnostic; nothing may follow but
# punctuation or a parenthesised comment.
RECIPIENT_REFUSED = (r"\b(?:recipient address|recipient|address) (?:rejected|refused|"
                     r"not accepted)\s*(?:<?[^\s<>@]+@[^\s<>@]+>?\s*)?(?:$|[.(\[])")

# Failures to reach the receiving host at all: when the retries ran out (or are still
# running) the message expired in the queue; the network is just why. (A routing failure,
# "no route to host", "network is unreachable", stays a network error: nothing was
# tried at the host.)
CONNECT_FAILURES: tuple[str, ...] = (
    "timed out", "timeout", "connection refused", "did not accept our requests to connect",
    "could not connect", "unable to connect", "socket error",
    *(w for _system in SYSTEMS for w in _system.connect_failures),  # the systems' own words
)

# A reason from a "user unknown" phrase, without an address status code, depends on the
# SMTP command that failed (see reasons.py); these say which command it was.
SMTP_COMMANDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("DATA", (
        "in reply to end of data", "after end of data", "in reply to data", "after data",
        ">>> data", "smtp command data", "after the data", "final data", "command data",
        "end of data command", "failed after i sent the message", "after i sent the message",
        "during data", "after sending the message", "delivery error: dd",
        "user doesn't have a",  # Yahoo's reply at the end of DATA
        # qmail-remote, Exim ("closed connection in response to end of data"), SendGrid
        # ("end of DATA"), 1&1/GMX ("for TEXT command": the message text), chasquid
        "failed on data command", "in response to data", "end of data", "for text command",
        "after sending data block", "data closing", "sent: data", "did not like our data",
    )),
    ("RCPT", (
        "in reply to rcpt to", "after rcpt to", "after rcpt", ">>> rcpt to", "rcpt to command",
        "does not like recipient", "smtp command rcpt", "after rcpt command", "[rcpt_to]",
        "rcpt to:<", "rcpt to: <", "in reply to rcpt", "smtp:rcpt", "our rcpt to",
        # Exim 4.9x ("after pipelined RCPT TO:"), SendGrid ("in RCPT TO"), chasquid
        # ("MAIL+RCPT"), X6-style ("Error following RCPT command"), 1&1 ("for RCPT command")
        "after pipelined rcpt", "in response to rcpt", "in rcpt to", "mail+rcpt",
        "following rcpt command", "following rcpt to command", "for rcpt command",
        "for rcpt to command",
    )),
    ("MAIL", (
        "after mail from", "in reply to mail from", ">>> mail from", "smtp command mail",
        "sender was rejected", "mail from command", "[mail_from]",
        "after pipelined mail from", "in response to mail from", "in mail from",
        "following mail command", "for mail command", "sent: mail from",
        "did not like our mail from",
    )),
    ("HELO", (
        "after helo", "after ehlo", "in reply to helo", "in reply to ehlo", ">>> helo",
        ">>> ehlo", "my name was rejected", "helo command", "in response to ehlo",
        "in response to helo", "ehlo command", "sent: ehlo", "sent: helo",
        "did not like our ehlo", "did not like our helo",
    )),
    ("CONN", (
        "after initial connection", "initial connection", "greeting failed",
        "refused to talk to me", "after connect", "in response to greeting",
    )),
)

# Category labels a reporting system puts in front of the reply it quotes (Amazon SES:
# "5.1.0 - Unknown address error 550-'5.7.1 ... Access denied'"): its guess from the code,
# not words of the reply, so they are removed before the phrase tables are searched.
REPORTER_LABELS: tuple[str, ...] = (
    "unknown address error",
)

# Words that show a diagnostic quotes a remote server's reply (even without its code).
REMOTE_REPLY: tuple[str, ...] = (
    "recipient address rejected", "remote host said", "said:", "server returned",
    "remote server", "<<< ", "smtp error", "responded with",
)

# Text after one of these lines is the original message, quoted by a plain-text bounce.
# (A banner of dashes naming the returned, original or unsent message, or a copy of it, is
# found by a pattern in bounced/classify/original.py, however many dashes frame it.)
ORIGINAL_MARKERS: tuple[str, ...] = (
    "original message follows",
    "message headers follow",
    "content-type: message/rfc822",
    "----- message header follows -----",
    "this is a copy of the original message",
    "header of the original message",
    "included is a copy of the message header",
    "----- the header of the original",
    # qmail's "--- Below this line is a copy of the message." in its Japanese localisation
    "以下はメッセージのコピーです", "以下は送信されたメッセージのコピーです",
)

# A challenge-response system's request that the sender prove itself (TMDA, Spam Arrest,
# Boxbe: "please confirm your message", "verify you are human"): an automatic answer on
# the recipient's behalf, never a failure of the address. Lowercase; searched in the
# start of the text of a message that is neither a mail system's report nor has a
# bounce's subject.
CHALLENGE_PHRASES: tuple[str, ...] = (
    "verify that you are a human", "verify you are a human", "verify that you are human",
    "verify you are human", "prove that you are human", "prove you are human",
    "confirm that you are human", "confirm you are human", "that you are a real person",
    "you are a real person", "verify that you are a real", "you are a human sender",
    "please confirm your message", "to release your message",
    "placed on the waiting list", "waiting list and has not been delivered",
    "add you to their guest list", "sender verification request",
)
