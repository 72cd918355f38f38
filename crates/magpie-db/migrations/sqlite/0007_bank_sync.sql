-- Bank connections and sync (issue 9); see migrations/postgres/0007_bank_sync.sql and docs/schema.md.

alter table connections add column provider text not null default 'PLAID'
    check (provider in ('PLAID', 'SIMPLEFIN', 'GOCARDLESS'));
alter table connections add column external_id text check (length(external_id) <= 100);
alter table connections add column sync_state text not null default '{}' check (json_valid(sync_state));
alter table connections add column accounts text not null default '[]' check (json_valid(accounts));
alter table connections add column last_error text check (length(last_error) <= 500);
alter table connections add column last_error_at text;
alter table connections add column consent_expires_at text;
alter table connections add column next_sync_at text;
alter table connections add column consecutive_failures integer not null default 0;
alter table connections add column sync_lease_until text;
alter table connections add column sync_lease_owner text check (length(sync_lease_owner) <= 100);
alter table connections add column updated_at text not null default '1970-01-01T00:00:00.000000Z';
update connections set updated_at = created_at;
create index idx_connections_provider_external on connections (provider, external_id);
create index idx_connections_due on connections (next_sync_at) where status = 'ACTIVE';

-- SQLite cannot change a CHECK in place: the transactions table is rebuilt with `pending` and the
-- PROVIDER category source. No table references transactions, so dropping the old one cascades nowhere.
create table transactions_new (
    id               blob    not null primary key check (length(id) = 16),
    user_id          blob    not null,
    amount           integer not null,
    date             text    not null check (date is date(date)),
    description      text    not null,
    category         text    not null check (length(category) <= 50),
    type             text    not null,
    source           text    not null,
    confidence_score integer,
    connection_id    blob,
    created_at       text    not null default (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'),
    updated_at       text    not null default (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'),
    deleted_at       text,
    import_batch_id  blob    references import_batches (id) on delete set null,
    external_key     text    check (length(external_key) <= 40),
    fingerprint      text    check (length(fingerprint) <= 40),
    category_source  text    not null default 'USER'
        check (category_source in ('USER', 'RULE', 'MEMORY', 'MODEL', 'PROVIDER', 'NONE')),
    pending          integer not null default 0 check (pending in (0, 1)),
    constraint fk_transactions_user foreign key (user_id) references users (id) on delete cascade,
    constraint fk_transactions_connection foreign key (connection_id) references connections (id) on delete set null,
    constraint ck_transactions_type check (type in ('INCOME', 'EXPENSE')),
    constraint ck_transactions_source check (source in ('MANUAL', 'API', 'FILE_IMPORT')),
    -- amount >= 0 as the seed says; the upper bound is NUMERIC(12,2)'s 9,999,999,999.99 in cents.
    constraint ck_transactions_amount check (amount >= 0 and amount <= 999999999999),
    constraint ck_transactions_confidence check (confidence_score is null or (confidence_score >= 0 and confidence_score <= 100))
) strict;
insert into transactions_new (id, user_id, amount, date, description, category, type, source, confidence_score,
    connection_id, created_at, updated_at, deleted_at, import_batch_id, external_key, fingerprint, category_source, pending)
select id, user_id, amount, date, description, category, type, source, confidence_score,
    connection_id, created_at, updated_at, deleted_at, import_batch_id, external_key, fingerprint, category_source, 0
from transactions;
drop table transactions;
alter table transactions_new rename to transactions;
create index idx_transactions_user_id on transactions (user_id);
create index idx_transactions_date on transactions (date);
create index idx_transactions_category on transactions (category);
create index idx_transactions_user_date on transactions (user_id, date);
create index idx_transactions_user_category on transactions (user_id, category);
create index idx_transactions_user_type on transactions (user_id, type);
create index idx_transactions_deleted_at on transactions (deleted_at);
create index idx_transactions_connection_id on transactions (connection_id);
create index idx_transactions_user_live_date on transactions (user_id, date, id, type, category, amount) where deleted_at is null;
create index idx_transactions_user_live_amount on transactions (user_id, amount, id) where deleted_at is null;
create unique index idx_transactions_user_external_key on transactions (user_id, external_key) where external_key is not null;
create unique index idx_transactions_user_fingerprint on transactions (user_id, fingerprint) where fingerprint is not null;
create index idx_transactions_import_batch on transactions (import_batch_id) where import_batch_id is not null;
create index idx_transactions_user_category_live on transactions (user_id, category, date, type, amount)
    where deleted_at is null;

create table sync_transactions (
    connection_id    blob    not null,
    account_id       text    not null check (length(account_id) <= 100),
    provider_txn_id  text    not null check (length(provider_txn_id) <= 200),
    transaction_id   blob    not null,
    pending          integer not null check (pending in (0, 1)),
    date             text    not null check (date is date(date)),
    amount           integer not null check (amount >= -999999999999 and amount <= 999999999999),
    description      text    not null,
    weak_id          integer not null default 0 check (weak_id in (0, 1)),
    updated_at       text    not null,
    primary key (connection_id, account_id, provider_txn_id),
    constraint fk_sync_transactions_connection foreign key (connection_id) references connections (id) on delete cascade,
    constraint fk_sync_transactions_transaction foreign key (transaction_id) references transactions (id) on delete cascade
) strict;
create unique index idx_sync_transactions_transaction on sync_transactions (transaction_id);
