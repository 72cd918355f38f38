-- Supporting tables for authentication (issue 3); see migrations/postgres/0002_auth.sql for the
-- commentary and docs/schema.md for the documentation. Same tables, in SQLite's terms.

create table auth_sessions (
    id          blob not null primary key check (length(id) = 16),
    user_id     blob not null,
    created_at  text not null,
    expires_at  text not null,
    revoked_at  text,
    user_agent  text check (length(user_agent) <= 200),
    client_ip   text check (length(client_ip) <= 64),
    constraint fk_auth_sessions_user foreign key (user_id) references users (id) on delete cascade
) strict;
create index idx_auth_sessions_user_id on auth_sessions (user_id);

create table refresh_tokens (
    token_hash  text not null primary key check (length(token_hash) = 64),
    session_id  blob not null,
    created_at  text not null,
    expires_at  text not null,
    used_at     text,
    constraint fk_refresh_tokens_session foreign key (session_id) references auth_sessions (id) on delete cascade
) strict;
create index idx_refresh_tokens_session_id on refresh_tokens (session_id);

create table personal_access_tokens (
    id            blob not null primary key check (length(id) = 16),
    user_id       blob not null,
    name          text not null check (length(name) <= 100),
    token_hash    text not null check (length(token_hash) = 64),
    token_prefix  text not null check (length(token_prefix) <= 16),
    scope         text not null,
    created_at    text not null,
    expires_at    text,
    last_used_at  text,
    revoked_at    text,
    constraint fk_personal_access_tokens_user foreign key (user_id) references users (id) on delete cascade,
    constraint ck_personal_access_tokens_scope check (scope in ('read', 'read-write'))
) strict;
create unique index idx_personal_access_tokens_token_hash on personal_access_tokens (token_hash);
create index idx_personal_access_tokens_user_id on personal_access_tokens (user_id);

create table login_failures (
    id            blob not null primary key check (length(id) = 16),
    throttle_key  text not null check (length(throttle_key) = 64),
    failed_at     text not null
) strict;
create index idx_login_failures_key_time on login_failures (throttle_key, failed_at);

create table server_secrets (
    name        text not null primary key check (length(name) <= 50),
    value       text not null,
    created_at  text not null
) strict;
