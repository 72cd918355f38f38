-- Budgets and goals (issue 7); see migrations/postgres/0006_goals.sql and docs/schema.md.

alter table financial_goals add column tracking_start text check (tracking_start is null or tracking_start is date(tracking_start));

create table goal_contributions (
    id          blob    not null primary key check (length(id) = 16),
    goal_id     blob    not null,
    user_id     blob    not null,
    amount      integer not null,
    date        text    not null check (date is date(date)),
    note        text    check (length(note) <= 200),
    created_at  text    not null,
    constraint fk_goal_contributions_goal foreign key (goal_id) references financial_goals (id) on delete cascade,
    constraint fk_goal_contributions_user foreign key (user_id) references users (id) on delete cascade,
    constraint ck_goal_contributions_amount check (amount > 0 and amount <= 999999999999)
) strict;
create index idx_goal_contributions_goal_date on goal_contributions (goal_id, date);
create index idx_goal_contributions_user_id on goal_contributions (user_id);

-- A goal's auto-tracked money is the sum of its category's live transactions since a day, by type:
-- covered by this index, an index-only range scan instead of reading every row of the category.
create index idx_transactions_user_category_live on transactions (user_id, category, date, type, amount)
    where deleted_at is null;
