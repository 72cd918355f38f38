-- Supporting tables for authentication (issue 3); documented in docs/schema.md.

-- One row per sign-in (a refresh-token family). Revoking it ends the session: its access tokens stop
-- working at once (every request checks the session) and its refresh tokens are refused.
create table auth_sessions (
    id          uuid         primary key,
    user_id     uuid         not null,
    created_at  timestamp    not null,
    expires_at  timestamp    not null,
    revoked_at  timestamp,
    user_agent  varchar(200),
    client_ip   varchar(64),
    constraint fk_auth_sessions_user foreign key (user_id) references users (id) on delete cascade
);
create index idx_auth_sessions_user_id on auth_sessions (user_id);

-- Refresh tokens, stored only as SHA-256 hashes. Each refresh marks the presented token used and issues
-- a new one in the same session; presenting a used token again revokes the whole session.
create table refresh_tokens (
    token_hash  varchar(64)  primary key,
    session_id  uuid         not null,
    created_at  timestamp    not null,
    expires_at  timestamp    not null,
    used_at     timestamp,
    constraint fk_refresh_tokens_session foreign key (session_id) references auth_sessions (id) on delete cascade
);
create index idx_refresh_tokens_session_id on refresh_tokens (session_id);

-- Personal access tokens for scripts, stored only as SHA-256 hashes.
create table personal_access_tokens (
    id            uuid         primary key,
    user_id       uuid         not null,
    name          varchar(100) not null,
    token_hash    varchar(64)  not null,
    token_prefix  varchar(16)  not null,
    scope         varchar(10)  not null,
    created_at    timestamp    not null,
    expires_at    timestamp,
    last_used_at  timestamp,
    revoked_at    timestamp,
    constraint fk_personal_access_tokens_user foreign key (user_id) references users (id) on delete cascade,
    constraint ck_personal_access_tokens_scope check (scope in ('read', 'read-write'))
);
create unique index idx_personal_access_tokens_token_hash on personal_access_tokens (token_hash);
create index idx_personal_access_tokens_user_id on personal_access_tokens (user_id);

-- Failed sign-ins, for throttling per account and per client address across every server process. The
-- key is a SHA-256 of 'account:<email>' or 'ip:<address>', so no address or email is stored in clear.
create table login_failures (
    id            uuid        primary key,
    throttle_key  varchar(64) not null,
    failed_at     timestamp   not null
);
create index idx_login_failures_key_time on login_failures (throttle_key, failed_at);

-- Server-wide secrets generated on first start and shared by every replica (the token signing key when
-- none is configured). Bank-token encryption keys are never stored here.
create table server_secrets (
    name        varchar(50) primary key,
    value       text        not null,
    created_at  timestamp   not null
);
