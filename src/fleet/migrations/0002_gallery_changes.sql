-- Gallery changes as published (`edgeid fleet enroll` / `fleet remove`): the signed message
-- exactly as devices receive it, and, for the operator, what it does.
CREATE TABLE gallery_changes (
    version bigint PRIMARY KEY CHECK (version > 0),
    op text NOT NULL CHECK (op IN ('add', 'remove')),
    name text NOT NULL,
    published_at timestamptz NOT NULL DEFAULT now(),
    published_by text NOT NULL,
    message text NOT NULL
);
