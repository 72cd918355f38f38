-- The six tables of the customer's schema on SQLite. Same names, columns, defaults, CHECKs, foreign-key
-- actions and indexes as migrations/postgres/0001_initial_schema.sql, in SQLite's terms:
--   * STRICT tables, so a column holds exactly its declared storage class;
--   * UUID  -> BLOB of 16 bytes (what sqlx's Uuid codec writes);
--   * NUMERIC(12,2) money -> INTEGER cents, bounded to NUMERIC(12,2)'s range; NUMERIC(3,2) -> hundredths;
--   * VARCHAR(n) -> TEXT with a length CHECK (length() counts characters, as PostgreSQL does);
--   * DATE -> canonical 'YYYY-MM-DD' TEXT (`x IS date(x)` rejects anything else);
--   * TIMESTAMP -> fixed-width UTC text 'YYYY-MM-DDTHH:MM:SS.ffffffZ', so text order is time order;
--   * JSONB -> TEXT that must be a JSON object; BOOLEAN -> INTEGER 0/1.
-- Foreign keys are enforced by PRAGMA foreign_keys=ON, set on every pooled connection.

create table users (
    id            blob not null primary key check (length(id) = 16),
    email         text not null check (length(email) <= 255),
    password_hash text not null check (length(password_hash) <= 255),
    first_name    text check (length(first_name) <= 100),
    last_name     text check (length(last_name) <= 100),
    created_at    text not null default (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'),
    updated_at    text not null default (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z')
) strict;
create unique index idx_users_email on users (email);

create table connections (
    id               blob not null primary key check (length(id) = 16),
    user_id          blob not null,
    institution_id   text not null check (length(institution_id) <= 100),
    institution_name text not null check (length(institution_name) <= 200),
    access_token     text not null,
    last_sync        text,
    status           text not null default 'ACTIVE',
    created_at       text not null default (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'),
    constraint fk_connections_user foreign key (user_id) references users (id) on delete cascade,
    constraint ck_connections_status check (status in ('ACTIVE', 'EXPIRED', 'ERROR'))
) strict;
create index idx_connections_user_id on connections (user_id);
create index idx_connections_status on connections (status);
create index idx_connections_user_status on connections (user_id, status);
create index idx_connections_user_institution on connections (user_id, institution_id);

create table transactions (
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
    constraint fk_transactions_user foreign key (user_id) references users (id) on delete cascade,
    constraint fk_transactions_connection foreign key (connection_id) references connections (id) on delete set null,
    constraint ck_transactions_type check (type in ('INCOME', 'EXPENSE')),
    constraint ck_transactions_source check (source in ('MANUAL', 'API', 'FILE_IMPORT')),
    -- amount >= 0 as the seed says; the upper bound is NUMERIC(12,2)'s 9,999,999,999.99 in cents.
    constraint ck_transactions_amount check (amount >= 0 and amount <= 999999999999),
    constraint ck_transactions_confidence check (confidence_score is null or (confidence_score >= 0 and confidence_score <= 100))
) strict;
create index idx_transactions_user_id on transactions (user_id);
create index idx_transactions_date on transactions (date);
create index idx_transactions_category on transactions (category);
create index idx_transactions_user_date on transactions (user_id, date);
create index idx_transactions_user_category on transactions (user_id, category);
create index idx_transactions_user_type on transactions (user_id, type);
create index idx_transactions_deleted_at on transactions (deleted_at);
create index idx_transactions_connection_id on transactions (connection_id);

create table budgets (
    id           blob not null primary key check (length(id) = 16),
    user_id      blob not null,
    name         text not null check (length(name) <= 100),
    period_start text not null check (period_start is date(period_start)),
    period_end   text not null check (period_end is date(period_end)),
    allocations  text not null,
    created_at   text not null default (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'),
    updated_at   text not null default (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'),
    constraint fk_budgets_user foreign key (user_id) references users (id) on delete cascade,
    constraint ck_budgets_period check (period_start <= period_end),
    constraint ck_budgets_allocations check (json_valid(allocations) and json_type(allocations) = 'object')
) strict;
create index idx_budgets_user_id on budgets (user_id);
create index idx_budgets_period_start on budgets (period_start);
create index idx_budgets_period_end on budgets (period_end);
create index idx_budgets_user_period on budgets (user_id, period_start, period_end);

create table financial_goals (
    id             blob    not null primary key check (length(id) = 16),
    user_id        blob    not null,
    name           text    not null check (length(name) <= 100),
    target_amount  integer not null,
    current_amount integer not null default 0,
    deadline       text check (deadline is null or deadline is date(deadline)),
    category       text check (length(category) <= 50),
    status         text    not null default 'ACTIVE',
    created_at     text    not null default (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'),
    updated_at     text    not null default (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'),
    constraint fk_financial_goals_user foreign key (user_id) references users (id) on delete cascade,
    constraint ck_financial_goals_status check (status in ('ACTIVE', 'ACHIEVED', 'ARCHIVED')),
    constraint ck_financial_goals_target_amount check (target_amount > 0 and target_amount <= 999999999999),
    constraint ck_financial_goals_current_amount check (current_amount >= 0 and current_amount <= 999999999999)
) strict;
create index idx_financial_goals_user_id on financial_goals (user_id);
create index idx_financial_goals_status on financial_goals (status);
create index idx_financial_goals_user_status on financial_goals (user_id, status);
create index idx_financial_goals_user_deadline on financial_goals (user_id, deadline);

create table ml_models (
    id          blob    not null primary key check (length(id) = 16),
    model_type  text    not null check (length(model_type) <= 50),
    user_id     blob,
    version     text    not null check (length(version) <= 20),
    accuracy    real,
    "precision" real,
    recall      real,
    trained_at  text    not null,
    model_path  text    not null check (length(model_path) <= 500),
    is_active   integer not null default 1 check (is_active in (0, 1)),
    constraint fk_ml_models_user foreign key (user_id) references users (id) on delete cascade,
    constraint ck_ml_models_model_type check (model_type in ('CATEGORIZATION', 'PREDICTION')),
    constraint ck_ml_models_accuracy check (accuracy is null or (accuracy >= 0 and accuracy <= 1)),
    constraint ck_ml_models_precision check ("precision" is null or ("precision" >= 0 and "precision" <= 1)),
    constraint ck_ml_models_recall check (recall is null or (recall >= 0 and recall <= 1))
) strict;
create index idx_ml_models_model_type on ml_models (model_type);
create index idx_ml_models_is_active on ml_models (is_active);
create index idx_ml_models_type_active on ml_models (model_type, is_active);
create index idx_ml_models_user_type on ml_models (user_id, model_type);
create index idx_ml_models_user_type_active on ml_models (user_id, model_type, is_active);
