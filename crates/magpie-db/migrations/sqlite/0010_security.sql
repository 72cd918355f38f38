-- Security (issue 23); see migrations/postgres/0010_security.sql for the commentary and docs/schema.md
-- for the documentation. Same tables, in SQLite's terms.

create table bank_requisitions (
    id          text not null primary key check (length(id) <= 100),
    user_id     blob not null references users (id) on delete cascade,
    provider    text not null check (provider in ('GOCARDLESS')),
    reference   text not null check (length(reference) <= 100),
    created_at  text not null
) strict;
create index idx_bank_requisitions_user on bank_requisitions (user_id);

create table user_totp (
    user_id        blob    not null primary key references users (id) on delete cascade,
    secret_sealed  text    not null,
    confirmed_at   text,
    last_step      integer not null default 0,
    created_at     text    not null
) strict;

create table recovery_codes (
    id          blob not null primary key check (length(id) = 16),
    user_id     blob not null references users (id) on delete cascade,
    code_hash   text not null check (length(code_hash) = 64),
    used_at     text,
    created_at  text not null
) strict;
create unique index idx_recovery_codes_user_hash on recovery_codes (user_id, code_hash);

create table passkeys (
    id             blob    not null primary key check (length(id) = 16),
    user_id        blob    not null references users (id) on delete cascade,
    credential_id  text    not null check (length(credential_id) <= 1400),
    public_key     blob    not null,
    algorithm      integer not null,
    sign_count     integer not null default 0,
    name           text    not null check (length(name) <= 100),
    transports     text    check (transports is null or length(transports) <= 200),
    created_at     text    not null,
    last_used_at   text
) strict;
create unique index idx_passkeys_credential_id on passkeys (credential_id);
create index idx_passkeys_user on passkeys (user_id);

create table user_identities (
    id            blob not null primary key check (length(id) = 16),
    user_id       blob not null references users (id) on delete cascade,
    issuer        text not null check (length(issuer) <= 500),
    subject       text not null check (length(subject) <= 255),
    email         text check (email is null or length(email) <= 255),
    created_at    text not null,
    last_used_at  text
) strict;
create unique index idx_user_identities_issuer_subject on user_identities (issuer, subject);
create index idx_user_identities_user on user_identities (user_id);

create table invites (
    code_hash   text not null primary key check (length(code_hash) = 64),
    email       text check (email is null or length(email) <= 255),
    created_at  text not null,
    expires_at  text not null,
    used_at     text,
    used_by     blob references users (id) on delete set null
) strict;

create table auth_challenges (
    token_hash  text    not null primary key check (length(token_hash) = 64),
    purpose     text    not null check (purpose in ('second_factor', 'passkey_register', 'passkey_sign_in', 'oidc')),
    user_id     blob    references users (id) on delete cascade,
    payload     text    not null default '{}' check (json_valid(payload)),
    attempts    integer not null default 0,
    created_at  text    not null,
    expires_at  text    not null
) strict;
create index idx_auth_challenges_expires on auth_challenges (expires_at);

-- SQLite cannot change a CHECK constraint in place: the audit log is copied into a table with the new
-- list of kinds, every row kept.
create table audit_events_new (
    id          blob    not null primary key check (length(id) = 16),
    user_id     blob    not null references users (id) on delete cascade,
    kind        text    not null,
    client_ip   text    check (client_ip is null or length(client_ip) <= 64),
    user_agent  text    check (user_agent is null or length(user_agent) <= 200),
    detail      text    not null default '{}',
    created_at  text    not null,
    constraint ck_audit_events_kind check (kind in ('sign_in', 'sign_in_failed',
        'password_changed', 'email_changed', 'token_created', 'token_revoked', 'sessions_revoked', 'connection_created',
        'connection_deleted', 'export', 'import', 'second_factor_failed', 'totp_enabled', 'totp_disabled',
        'recovery_codes_created', 'recovery_code_used', 'passkey_added', 'passkey_renamed', 'passkey_removed',
        'identity_linked', 'identity_removed'))
);
insert into audit_events_new (id, user_id, kind, client_ip, user_agent, detail, created_at)
    select id, user_id, kind, client_ip, user_agent, detail, created_at from audit_events;
drop table audit_events;
alter table audit_events_new rename to audit_events;
create index idx_audit_events_user_created on audit_events (user_id, created_at);

delete from server_secrets where name = 'auth_signing_key';
