-- The six tables of the customer's schema (shared/seed/database-schema.md), with every column, type,
-- default, CHECK, foreign-key action and index it lists. Index names follow the seed's pattern
-- idx_<table>_<columns>; constraint names are ck_/fk_<table>_<what> so errors can be mapped by name.
-- Timestamps are TIMESTAMP (no zone) as the seed says; Magpie always stores UTC in them.

create table users (
    id            uuid         primary key,
    email         varchar(255) not null,
    password_hash varchar(255) not null,
    first_name    varchar(100),
    last_name     varchar(100),
    created_at    timestamp    not null default (now() at time zone 'utc'),
    updated_at    timestamp    not null default (now() at time zone 'utc')
);
create unique index idx_users_email on users (email);

-- connections comes before transactions, which references it.
create table connections (
    id               uuid         primary key,
    user_id          uuid         not null,
    institution_id   varchar(100) not null,
    institution_name varchar(200) not null,
    access_token     text         not null,
    last_sync        timestamp,
    status           varchar(20)  not null default 'ACTIVE',
    created_at       timestamp    not null default (now() at time zone 'utc'),
    constraint fk_connections_user foreign key (user_id) references users (id) on delete cascade,
    constraint ck_connections_status check (status in ('ACTIVE', 'EXPIRED', 'ERROR'))
);
create index idx_connections_user_id on connections (user_id);
create index idx_connections_status on connections (status);
create index idx_connections_user_status on connections (user_id, status);
create index idx_connections_user_institution on connections (user_id, institution_id);

create table transactions (
    id               uuid          primary key,
    user_id          uuid          not null,
    amount           numeric(12,2) not null,
    date             date          not null,
    description      text          not null,
    category         varchar(50)   not null,
    type             varchar(10)   not null,
    source           varchar(20)   not null,
    confidence_score numeric(3,2),
    connection_id    uuid,
    created_at       timestamp     not null default (now() at time zone 'utc'),
    updated_at       timestamp     not null default (now() at time zone 'utc'),
    deleted_at       timestamp,
    constraint fk_transactions_user foreign key (user_id) references users (id) on delete cascade,
    constraint fk_transactions_connection foreign key (connection_id) references connections (id) on delete set null,
    constraint ck_transactions_type check (type in ('INCOME', 'EXPENSE')),
    constraint ck_transactions_source check (source in ('MANUAL', 'API', 'FILE_IMPORT')),
    constraint ck_transactions_amount check (amount >= 0),
    constraint ck_transactions_confidence check (confidence_score is null or (confidence_score >= 0 and confidence_score <= 1))
);
create index idx_transactions_user_id on transactions (user_id);
create index idx_transactions_date on transactions (date);
create index idx_transactions_category on transactions (category);
create index idx_transactions_user_date on transactions (user_id, date);
create index idx_transactions_user_category on transactions (user_id, category);
create index idx_transactions_user_type on transactions (user_id, type);
create index idx_transactions_deleted_at on transactions (deleted_at);
-- Not in the seed's list but needed by its SET NULL rule: without it, deleting a connection scans
-- every transaction to find the rows to detach.
create index idx_transactions_connection_id on transactions (connection_id);

create table budgets (
    id           uuid         primary key,
    user_id      uuid         not null,
    name         varchar(100) not null,
    period_start date         not null,
    period_end   date         not null,
    allocations  jsonb        not null,
    created_at   timestamp    not null default (now() at time zone 'utc'),
    updated_at   timestamp    not null default (now() at time zone 'utc'),
    constraint fk_budgets_user foreign key (user_id) references users (id) on delete cascade,
    constraint ck_budgets_period check (period_start <= period_end),
    constraint ck_budgets_allocations check (jsonb_typeof(allocations) = 'object')
);
create index idx_budgets_user_id on budgets (user_id);
create index idx_budgets_period_start on budgets (period_start);
create index idx_budgets_period_end on budgets (period_end);
create index idx_budgets_user_period on budgets (user_id, period_start, period_end);

create table financial_goals (
    id             uuid          primary key,
    user_id        uuid          not null,
    name           varchar(100)  not null,
    target_amount  numeric(12,2) not null,
    current_amount numeric(12,2) not null default 0,
    deadline       date,
    category       varchar(50),
    status         varchar(20)   not null default 'ACTIVE',
    created_at     timestamp     not null default (now() at time zone 'utc'),
    updated_at     timestamp     not null default (now() at time zone 'utc'),
    constraint fk_financial_goals_user foreign key (user_id) references users (id) on delete cascade,
    constraint ck_financial_goals_status check (status in ('ACTIVE', 'ACHIEVED', 'ARCHIVED')),
    constraint ck_financial_goals_target_amount check (target_amount > 0),
    constraint ck_financial_goals_current_amount check (current_amount >= 0)
);
create index idx_financial_goals_user_id on financial_goals (user_id);
create index idx_financial_goals_status on financial_goals (status);
create index idx_financial_goals_user_status on financial_goals (user_id, status);
create index idx_financial_goals_user_deadline on financial_goals (user_id, deadline);

create table ml_models (
    id          uuid             primary key,
    model_type  varchar(50)      not null,
    user_id     uuid,
    version     varchar(20)      not null,
    accuracy    double precision,
    "precision" double precision,
    recall      double precision,
    trained_at  timestamp        not null,
    model_path  varchar(500)     not null,
    is_active   boolean          not null default true,
    constraint fk_ml_models_user foreign key (user_id) references users (id) on delete cascade,
    constraint ck_ml_models_model_type check (model_type in ('CATEGORIZATION', 'PREDICTION')),
    constraint ck_ml_models_accuracy check (accuracy is null or (accuracy >= 0 and accuracy <= 1)),
    constraint ck_ml_models_precision check ("precision" is null or ("precision" >= 0 and "precision" <= 1)),
    constraint ck_ml_models_recall check (recall is null or (recall >= 0 and recall <= 1))
);
create index idx_ml_models_model_type on ml_models (model_type);
create index idx_ml_models_is_active on ml_models (is_active);
create index idx_ml_models_type_active on ml_models (model_type, is_active);
create index idx_ml_models_user_type on ml_models (user_id, model_type);
create index idx_ml_models_user_type_active on ml_models (user_id, model_type, is_active);
