-- Bank connections and sync (issue 9); see docs/schema.md ("Bank sync") for why each column exists.

-- Which aggregator, its id for the link (webhooks and duplicate checks), what the sync needs to resume
-- (cursor, window ends, quotas: committed in the same transaction as the rows), the accounts behind the
-- link, the last error, the schedule and the lease that keeps one sync per connection at a time.
alter table connections add column provider varchar(20) not null default 'PLAID';
alter table connections add column external_id varchar(100);
alter table connections add column sync_state jsonb not null default '{}';
alter table connections add column accounts jsonb not null default '[]';
alter table connections add column last_error varchar(500);
alter table connections add column last_error_at timestamp;
alter table connections add column consent_expires_at timestamp;
alter table connections add column next_sync_at timestamp;
alter table connections add column consecutive_failures integer not null default 0;
alter table connections add column sync_lease_until timestamp;
alter table connections add column sync_lease_owner varchar(100);
alter table connections add column updated_at timestamp not null default current_timestamp;
alter table connections add constraint ck_connections_provider check (provider in ('PLAID', 'SIMPLEFIN', 'GOCARDLESS'));
create index idx_connections_provider_external on connections (provider, external_id);
create index idx_connections_due on connections (next_sync_at) where status = 'ACTIVE';

-- Pending bank transactions are shown (and counted) until they post or vanish.
alter table transactions add column pending boolean not null default false;
alter table transactions drop constraint ck_transactions_category_source;
alter table transactions add constraint ck_transactions_category_source
    check (category_source in ('USER', 'RULE', 'MEMORY', 'MODEL', 'PROVIDER', 'NONE'));

-- The provider's identity of each synced transaction and what the provider last said about it, so that
-- a sync can tell new, changed, posted and vanished rows apart and keep the person's edits.
create table sync_transactions (
    connection_id    uuid          not null,
    account_id       varchar(100)  not null,
    provider_txn_id  varchar(200)  not null,
    transaction_id   uuid          not null,
    pending          boolean       not null,
    date             date          not null,
    amount           numeric(12,2) not null,
    description      text          not null,
    weak_id          boolean       not null default false,
    updated_at       timestamp     not null,
    primary key (connection_id, account_id, provider_txn_id),
    constraint fk_sync_transactions_connection foreign key (connection_id) references connections (id) on delete cascade,
    constraint fk_sync_transactions_transaction foreign key (transaction_id) references transactions (id) on delete cascade
);
create unique index idx_sync_transactions_transaction on sync_transactions (transaction_id);
