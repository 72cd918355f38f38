-- Statement file imports (issue 5); documented in docs/schema.md.

-- One row per committed import: what was read and what became of it. Reverting deletes the batch's
-- transactions and keeps this row (status REVERTED) as the record of what happened.
create table import_batches (
    id           uuid         primary key,
    user_id      uuid         not null,
    filename     varchar(255),
    format       varchar(10)  not null,
    encoding     varchar(40),
    status       varchar(10)  not null default 'COMMITTED',
    rows_read    bigint       not null,
    imported     bigint       not null,
    duplicates   bigint       not null,
    skipped      bigint       not null,
    errors       bigint       not null,
    created_at   timestamp    not null,
    reverted_at  timestamp,
    constraint fk_import_batches_user foreign key (user_id) references users (id) on delete cascade,
    constraint ck_import_batches_status check (status in ('COMMITTED', 'REVERTED')),
    constraint ck_import_batches_format check (format in ('csv', 'ofx', 'qif', 'camt', 'mt940'))
);
create index idx_import_batches_user_created on import_batches (user_id, created_at);

-- Dedup keys and batch of imported (and, later, synced) transactions. Both keys are unique per user and
-- stay on soft-deleted rows, so a deleted transaction does not come back on the next import.
--   external_key: hash of the file's own transaction id, namespaced by account ("x1:...");
--   fingerprint:  hash of account, date, amount, normalized description and occurrence ("f1:...").
alter table transactions add column import_batch_id uuid;
alter table transactions add column external_key varchar(40);
alter table transactions add column fingerprint varchar(40);
alter table transactions add constraint fk_transactions_import_batch
    foreign key (import_batch_id) references import_batches (id) on delete set null;
create unique index idx_transactions_user_external_key on transactions (user_id, external_key) where external_key is not null;
create unique index idx_transactions_user_fingerprint on transactions (user_id, fingerprint) where fingerprint is not null;
create index idx_transactions_import_batch on transactions (import_batch_id) where import_batch_id is not null;
