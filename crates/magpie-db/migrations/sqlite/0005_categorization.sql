-- Categorization (issue 6); see migrations/postgres/0005_categorization.sql and docs/schema.md.

alter table transactions add column category_source text not null default 'USER'
    check (category_source in ('USER', 'RULE', 'MEMORY', 'MODEL', 'NONE'));
update transactions set category_source = case
    when confidence_score is not null then 'MODEL'
    when category = 'Uncategorized' then 'NONE'
    else 'USER' end;

create table categorization_rules (
    id          blob    not null primary key check (length(id) = 16),
    user_id     blob    not null,
    name        text    not null check (length(name) <= 100),
    priority    integer not null default 100,
    match_kind  text    not null,
    pattern     text    not null check (length(pattern) <= 500),
    min_amount  integer,
    max_amount  integer,
    type        text,
    category    text    not null check (length(category) <= 50),
    enabled     integer not null default 1 check (enabled in (0, 1)),
    created_at  text    not null,
    updated_at  text    not null,
    constraint fk_categorization_rules_user foreign key (user_id) references users (id) on delete cascade,
    constraint ck_categorization_rules_match_kind check (match_kind in ('CONTAINS', 'EXACT', 'REGEX')),
    constraint ck_categorization_rules_type check (type is null or type in ('INCOME', 'EXPENSE')),
    constraint ck_categorization_rules_amounts check (
        (min_amount is null or (min_amount >= 0 and min_amount <= 999999999999))
        and (max_amount is null or (max_amount >= 0 and max_amount <= 999999999999))
        and (min_amount is null or max_amount is null or min_amount <= max_amount))
) strict;
create index idx_categorization_rules_user_priority on categorization_rules (user_id, priority, created_at);

create table merchant_categories (
    user_id       blob    not null,
    merchant_key  text    not null check (length(merchant_key) <= 200),
    category      text    not null check (length(category) <= 50),
    corrections   integer not null default 1,
    updated_at    text    not null,
    primary key (user_id, merchant_key),
    constraint fk_merchant_categories_user foreign key (user_id) references users (id) on delete cascade
) strict;

create table ml_training_state (
    user_id                     blob    not null primary key,
    corrections_since_training  integer not null default 0,
    last_trained_at             text,
    constraint fk_ml_training_state_user foreign key (user_id) references users (id) on delete cascade
) strict;

create table jobs (
    id            blob    not null primary key check (length(id) = 16),
    kind          text    not null check (length(kind) <= 50),
    user_id       blob,
    payload       text    not null default '{}' check (json_valid(payload)),
    status        text    not null default 'QUEUED',
    dedupe_key    text    check (length(dedupe_key) <= 200),
    attempts      integer not null default 0,
    max_attempts  integer not null default 3,
    run_at        text    not null,
    locked_until  text,
    locked_by     text,
    last_error    text,
    result        text    check (result is null or json_valid(result)),
    created_at    text    not null,
    updated_at    text    not null,
    finished_at   text,
    constraint fk_jobs_user foreign key (user_id) references users (id) on delete cascade,
    constraint ck_jobs_status check (status in ('QUEUED', 'RUNNING', 'DONE', 'FAILED'))
) strict;
create index idx_jobs_status_run_at on jobs (status, run_at);
create index idx_jobs_user_id on jobs (user_id);
create unique index idx_jobs_dedupe_queued on jobs (dedupe_key) where status = 'QUEUED';
