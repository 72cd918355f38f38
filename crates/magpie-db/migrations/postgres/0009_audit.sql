-- The audit log of sensitive actions, readable by the user (issue 11); documented in docs/schema.md.
create table audit_events (
    id          uuid          primary key,
    user_id     uuid          not null,
    kind        varchar(40)   not null,
    client_ip   varchar(64),
    user_agent  varchar(200),
    detail      jsonb         not null default '{}',
    created_at  timestamp     not null,
    constraint fk_audit_events_user foreign key (user_id) references users (id) on delete cascade,
    constraint ck_audit_events_kind check (kind in ('sign_in', 'sign_in_failed', 'password_changed', 'email_changed',
        'token_created', 'token_revoked', 'sessions_revoked', 'connection_created', 'connection_deleted', 'export', 'import'))
);
create index idx_audit_events_user_created on audit_events (user_id, created_at);
