// Shapes of the account API's results (as the server's msgspec Structs encode them).

export interface AliasMembership {
	address: string;
	members: string[];
	post_public: boolean;
	list_members: boolean;
	allow_msg_from: boolean;
}

export interface Overview {
	account: string;
	full_name: string;
	addresses: string[];
	domain: string;
	aliases: AliasMembership[];
	quota: number | null;
	usage: number;
	retired_keep: number;
	fromid_login_addresses: string[];
}

export interface KeyInfo {
	fingerprint: string;
	account: string;
	name: string;
	key_type: string;
	login_address: string;
	no_imap_preauth: boolean;
	cert_pem: string;
}

export interface GeneratedKey {
	key: KeyInfo;
	private_key_pem: string;
	pkcs12: string; // base64
	openssl_commands: string[];
}

export interface RulesetSpec {
	smtp_mail_from?: string;
	msg_from?: string;
	verified_domain?: string;
	headers?: [string, string][];
	mailbox?: string;
	is_list?: boolean;
	accept_regardless?: boolean;
	comment?: string;
}

export interface JunkSettings {
	enabled: boolean;
	threshold: number;
	action: "junk" | "reject";
	rejects_mailbox: string;
	rejects_keep_days: number;
	ngram_sizes: number[];
	top_words: number;
	ignored_words: string[];
	rare_word_cutoff: number;
	junk_mailboxes: string[];
	notjunk_mailboxes: string[];
	train_untouched: boolean;
}

export interface Endpoint {
	protocol: "imap" | "submission";
	host: string;
	port: number;
	security: "implicit" | "starttls";
}

export interface ClientSettings {
	address: string;
	username: string;
	domain: string;
	imap: Endpoint[];
	submission: Endpoint[];
}

export interface MailboxName {
	name: string;
	messages: number;
	size: number;
}

export interface ImportProgress {
	read: number;
	total: number;
	messages: number;
	skipped: number;
	mailbox: string;
}

export interface ImportResult {
	messages: number;
	skipped: number;
	mailboxes: string[];
	problems: string[];
}

export interface Suppression {
	id: number;
	base_address: string;
	original_address: string;
	manual: boolean;
	reason: string;
	created: number;
}

export interface WebhookSettings {
	account: string;
	outgoing_url: string;
	outgoing_authorization: string;
	outgoing_events: string[];
	incoming_url: string;
	incoming_authorization: string;
	has_secret: boolean;
	retired_keep: number;
}

export interface Webhooks {
	settings: WebhookSettings;
	events: string[]; // every outgoing event there is
}
