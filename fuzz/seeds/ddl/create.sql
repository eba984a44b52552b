CREATE TABLE public.ts_kv (
    entity_id uuid NOT NULL,
    key integer NOT NULL,
    "Odd ""Col""" numeric(10,2) COLLATE pg_catalog."default",
    g bigint GENERATED ALWAYS AS ((key * 2)) STORED,
    CONSTRAINT c CHECK ((key > 0))
)
PARTITION BY RANGE (ts);
ALTER TABLE ONLY public.ts_kv ATTACH PARTITION public.ts_kv_2025_08 FOR VALUES FROM ('1') TO ('2');
COPY public.ts_kv (entity_id, key) FROM stdin;
