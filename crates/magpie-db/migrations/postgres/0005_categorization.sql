-- Categorization (issue 6): rules, remembered corrections, where a category came from, training state,
-- and the job queue. Documented in docs/schema.md.

-- Who decided each transaction's category. Existing rows: a confidence means a model did; otherwise a
-- category other than Uncategorized was a person's choice.
alter table transactions add column category_source varchar(10) not null default 'USER';
update transactions set category_source = case
    when confidence_score is not null then 'MODEL'
    when category = 'Uncategorized' then 'NONE'
    else 'USER' end;
alter table transactions add constraint ck_transactions_category_source
    check (category_source in ('USER', 'RULE', 'MEMORY', 'MODEL', 'NONE'));

-- A person's categorization rules, applied before any model in priority order (lowest first, then
-- oldest). Every condition given must hold: the description matches `pattern` (case-insensitively, as
-- CONTAINS, EXACT or REGEX), the amount is within [min_amount, max_amount], the type is `type`.
create table categorization_rules (
    id          uuid          primary key,
    user_id     uuid          not null,
    name        varchar(100)  not null,
    priority    integer       not null default 100,
    match_kind  varchar(10)   not null,
    pattern     varchar(500)  not null,
    min_amount  numeric(12,2),
    max_amount  numeric(12,2),
    type        varchar(10),
    category    varchar(50)   not null,
    enabled     boolean       not null default true,
    created_at  timestamp     not null,
    updated_at  timestamp     not null,
    constraint fk_categorization_rules_user foreign key (user_id) references users (id) on delete cascade,
    constraint ck_categorization_rules_match_kind check (match_kind in ('CONTAINS', 'EXACT', 'REGEX')),
    constraint ck_categorization_rules_type check (type is null or type in ('INCOME', 'EXPENSE')),
    constraint ck_categorization_rules_amounts check (
        (min_amount is null or min_amount >= 0) and (max_amount is null or max_amount >= 0)
        and (min_amount is null or max_amount is null or min_amount <= max_amount))
);
create index idx_categorization_rules_user_priority on categorization_rules (user_id, priority, created_at);

-- Corrections remembered per merchant: the category a person last gave a merchant (its description
-- without store numbers, dates and references), applied after the rules and before the models, so a
-- correction takes effect at once, before the next training.
create table merchant_categories (
    user_id       uuid          not null,
    merchant_key  varchar(200)  not null,
    category      varchar(50)   not null,
    corrections   integer       not null default 1,
    updated_at    timestamp     not null,
    primary key (user_id, merchant_key),
    constraint fk_merchant_categories_user foreign key (user_id) references users (id) on delete cascade
);

-- Per user: corrections since the last training of their model (the background retraining trigger).
create table ml_training_state (
    user_id                     uuid       primary key,
    corrections_since_training  integer    not null default 0,
    last_trained_at             timestamp,
    constraint fk_ml_training_state_user foreign key (user_id) references users (id) on delete cascade
);

-- Background jobs (training now; syncs and forecasts later). A worker claims the oldest due job with
-- FOR UPDATE SKIP LOCKED, so any number of replicas run each job once; `locked_until` lets another
-- worker take over a job whose worker died. At most one queued job per `dedupe_key`.
create table jobs (
    id            uuid          primary key,
    kind          varchar(50)   not null,
    user_id       uuid,
    payload       jsonb         not null default '{}',
    status        varchar(10)   not null default 'QUEUED',
    dedupe_key    varchar(200),
    attempts      integer       not null default 0,
    max_attempts  integer       not null default 3,
    run_at        timestamp     not null,
    locked_until  timestamp,
    locked_by     varchar(100),
    last_error    text,
    result        jsonb,
    created_at    timestamp     not null,
    updated_at    timestamp     not null,
    finished_at   timestamp,
    constraint fk_jobs_user foreign key (user_id) references users (id) on delete cascade,
    constraint ck_jobs_status check (status in ('QUEUED', 'RUNNING', 'DONE', 'FAILED'))
);
create index idx_jobs_status_run_at on jobs (status, run_at);
create index idx_jobs_user_id on jobs (user_id);
create unique index idx_jobs_dedupe_queued on jobs (dedupe_key) where status = 'QUEUED';
