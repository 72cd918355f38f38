-- Security (issue 23): who created each bank requisition, two-factor sign-in (TOTP with recovery codes,
-- passkeys), OpenID Connect identities, invitations, short-lived sign-in challenges, and the audit
-- log's new kinds. Documented in docs/schema.md.

-- A GoCardless requisition (bank consent) started through this server, with the user who started it
-- and the random reference sent with it: linking a requisition is refused to anyone else.
create table bank_requisitions (
    id          varchar(100)  primary key,
    user_id     uuid          not null,
    provider    varchar(20)   not null,
    reference   varchar(100)  not null,
    created_at  timestamp     not null,
    constraint fk_bank_requisitions_user foreign key (user_id) references users (id) on delete cascade,
    constraint ck_bank_requisitions_provider check (provider in ('GOCARDLESS'))
);
create index idx_bank_requisitions_user on bank_requisitions (user_id);

-- A user's TOTP (RFC 6238) authenticator. The seed is sealed with the server's encryption key
-- (AES-256-GCM, like bank tokens); `confirmed_at` is null until a first code proves the enrolment;
-- `last_step` is the last 30-second step a code was accepted for, so each code works once.
create table user_totp (
    user_id        uuid        primary key,
    secret_sealed  text        not null,
    confirmed_at   timestamp,
    last_step      bigint      not null default 0,
    created_at     timestamp   not null,
    constraint fk_user_totp_user foreign key (user_id) references users (id) on delete cascade
);

-- One-time recovery codes, stored only as SHA-256 hashes.
create table recovery_codes (
    id          uuid         primary key,
    user_id     uuid         not null,
    code_hash   varchar(64)  not null,
    used_at     timestamp,
    created_at  timestamp    not null,
    constraint fk_recovery_codes_user foreign key (user_id) references users (id) on delete cascade
);
create unique index idx_recovery_codes_user_hash on recovery_codes (user_id, code_hash);

-- WebAuthn credentials (passkeys). `credential_id` is the authenticator's id (base64url), `public_key`
-- the COSE key it registered; `sign_count` catches cloned authenticators.
create table passkeys (
    id             uuid           primary key,
    user_id        uuid           not null,
    credential_id  varchar(1400)  not null,
    public_key     bytea          not null,
    algorithm      integer        not null,
    sign_count     bigint         not null default 0,
    name           varchar(100)   not null,
    transports     varchar(200),
    created_at     timestamp      not null,
    last_used_at   timestamp,
    constraint fk_passkeys_user foreign key (user_id) references users (id) on delete cascade
);
create unique index idx_passkeys_credential_id on passkeys (credential_id);
create index idx_passkeys_user on passkeys (user_id);

-- Accounts at an OpenID Connect provider linked to a user, by issuer and subject (never by email).
create table user_identities (
    id            uuid          primary key,
    user_id       uuid          not null,
    issuer        varchar(500)  not null,
    subject       varchar(255)  not null,
    email         varchar(255),
    created_at    timestamp     not null,
    last_used_at  timestamp,
    constraint fk_user_identities_user foreign key (user_id) references users (id) on delete cascade
);
create unique index idx_user_identities_issuer_subject on user_identities (issuer, subject);
create index idx_user_identities_user on user_identities (user_id);

-- Invitations for invite-only sign-up, stored as SHA-256 hashes; optionally for one email.
create table invites (
    code_hash   varchar(64)   primary key,
    email       varchar(255),
    created_at  timestamp     not null,
    expires_at  timestamp     not null,
    used_at     timestamp,
    used_by     uuid,
    constraint fk_invites_used_by foreign key (used_by) references users (id) on delete set null
);

-- Short-lived, single-use sign-in state that any replica may have to finish: a pending second factor,
-- a WebAuthn challenge, an OpenID Connect state. Keyed by the SHA-256 of the token the client holds.
create table auth_challenges (
    token_hash  varchar(64)  primary key,
    purpose     varchar(30)  not null,
    user_id     uuid,
    payload     jsonb        not null default '{}',
    attempts    integer      not null default 0,
    created_at  timestamp    not null,
    expires_at  timestamp    not null,
    constraint fk_auth_challenges_user foreign key (user_id) references users (id) on delete cascade,
    constraint ck_auth_challenges_purpose check (purpose in ('second_factor', 'passkey_register', 'passkey_sign_in', 'oidc'))
);
create index idx_auth_challenges_expires on auth_challenges (expires_at);

alter table audit_events drop constraint ck_audit_events_kind;
alter table audit_events add constraint ck_audit_events_kind check (kind in ('sign_in', 'sign_in_failed',
    'password_changed', 'email_changed', 'token_created', 'token_revoked', 'sessions_revoked', 'connection_created',
    'connection_deleted', 'export', 'import', 'second_factor_failed', 'totp_enabled', 'totp_disabled',
    'recovery_codes_created', 'recovery_code_used', 'passkey_added', 'passkey_renamed', 'passkey_removed',
    'identity_linked', 'identity_removed'));

-- The token signing key no longer lives in the database (a stolen copy of it could forge sign-ins): the
-- server keeps it in a key file. Dropping the stored one rotates it: every old access token and web
-- session cookie stops working on upgrade, and people sign in again.
delete from server_secrets where name = 'auth_signing_key';
