-- The audit log of sensitive actions, readable by the user (issue 11); documented in docs/schema.md.
create table audit_events (
    id          blob    not null primary key check (length(id) = 16),
    user_id     blob    not null references users (id) on delete cascade,
    kind        text    not null,
    client_ip   text    check (client_ip is null or length(client_ip) <= 64),
    user_agent  text    check (user_agent is null or length(user_agent) <= 200),
    detail      text    not null default '{}',
    created_at  text    not null,
    constraint ck_audit_events_kind check (kind in ('sign_in', 'sign_in_failed', 'password_changed', 'email_changed',
        'token_created', 'token_revoked', 'sessions_revoked', 'connection_created', 'connection_deleted', 'export', 'import'))
);
create index idx_audit_events_user_created on audit_events (user_id, created_at);
