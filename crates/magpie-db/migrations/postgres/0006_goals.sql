-- Budgets and goals (issue 7); documented in docs/schema.md.

-- Auto-tracking of a goal linked to a category counts that category's transactions dated from here on
-- (NULL: from the goal's creation day).
alter table financial_goals add column tracking_start date;

-- Money put towards a goal by hand. A goal's current_amount is always the exact sum of its
-- contributions plus its auto-tracked amount, recomputed in the transaction that changes either.
create table goal_contributions (
    id          uuid           primary key,
    goal_id     uuid           not null,
    user_id     uuid           not null,
    amount      numeric(12,2)  not null,
    date        date           not null,
    note        varchar(200),
    created_at  timestamp      not null,
    constraint fk_goal_contributions_goal foreign key (goal_id) references financial_goals (id) on delete cascade,
    constraint fk_goal_contributions_user foreign key (user_id) references users (id) on delete cascade,
    constraint ck_goal_contributions_amount check (amount > 0)
);
create index idx_goal_contributions_goal_date on goal_contributions (goal_id, date);
create index idx_goal_contributions_user_id on goal_contributions (user_id);

-- A goal's auto-tracked money is the sum of its category's live transactions since a day, by type:
-- covered by this index, an index-only range scan instead of reading every row of the category.
create index idx_transactions_user_category_live on transactions (user_id, category, date, type, amount)
    where deleted_at is null;
