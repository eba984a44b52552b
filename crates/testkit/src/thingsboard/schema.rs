//! ThingsBoard's PostgreSQL schema, as the installer of two releases either side of the 3.7
//! dictionary rename creates it: v3.6.4 ([`Dictionary::Legacy`]) and v4.3.1.3
//! ([`Dictionary::KeyDictionary`]).
//!
//! Written from the facts in ThingsBoard's own schema files (`git show TAG:PATH` in
//! `github.com/thingsboard/thingsboard`), not copied from them:
//! - `dao/src/main/resources/sql/schema-entities.sql`: the entity tables, `attribute_kv`,
//!   `relation`, `ts_kv_latest` and the key dictionary (`ts_kv_dictionary` in v3.6.4,
//!   `key_dictionary` in v4.3.1.3, which also keys `attribute_kv`);
//! - `dao/src/main/resources/sql/schema-ts-psql.sql`: `ts_kv`, `PARTITION BY RANGE (ts)`;
//! - `application/.../install/SqlTsDatabaseSchemaService.java`: the DEFAULT partition
//!   `ts_kv_indefinite`, and `dao/.../timeseries/SqlPartition.java`: the monthly partitions
//!   created at runtime ([`super::MonthPartition::create_sql`]).
//!
//! Differences between the generations kept here: `version` columns (v4.3.1.3: `BIGINT
//! DEFAULT 1` on entity tables, sequence-fed `bigint default 0` on `attribute_kv`,
//! `ts_kv_latest` and `relation`), `customer.is_public` and its unique title, `attribute_kv`
//! keyed by text (`entity_type`, `attribute_type` `'SERVER_SCOPE'`, `attribute_key`) in
//! v3.6.4 and by integers (`attribute_type` 1/2/3, `attribute_key` → `key_dictionary`) in
//! v4.3.1.3, and the `queue_stats` table (v4.3.1.3; v3.6.4 keeps queue statistics as
//! telemetry of assets of type `TbServiceQueue`). Foreign keys are left out: the fixture
//! inserts rows in whatever order suits it.

use super::Dictionary;

/// The `version` column of entity tables in v4.3.1.3 (JPA's optimistic-lock counter).
fn entity_version(d: Dictionary) -> &'static str {
    match d {
        Dictionary::Legacy => "",
        Dictionary::KeyDictionary => ",\n    version bigint DEFAULT 1",
    }
}

/// The sequence-fed `version` column of `attribute_kv`, `ts_kv_latest` and `relation` in
/// v4.3.1.3.
fn row_version(d: Dictionary) -> &'static str {
    match d {
        Dictionary::Legacy => "",
        Dictionary::KeyDictionary => ",\n    version bigint DEFAULT 0",
    }
}

/// The DDL of every table the fixture uses, for the generation `d`. `ts_kv` is created
/// without its primary key, which [`super::TS_KV_PRIMARY_KEY_SQL`] adds after the bulk load.
pub fn schema_sql(d: Dictionary) -> String {
    let mut sql = settings_sql(d);
    sql.push_str(&tenancy_sql(d));
    sql.push_str(&profiles_sql(d));
    sql.push_str(&entities_sql(d));
    sql.push_str(&key_values_sql(d));
    sql
}

fn settings_sql(d: Dictionary) -> String {
    let product = match d {
        Dictionary::Legacy => "",
        Dictionary::KeyDictionary => ",\n    product varchar(2) NOT NULL",
    };
    let insert = match d {
        Dictionary::Legacy => format!(
            "INSERT INTO tb_schema_settings (schema_version) VALUES ({});",
            d.schema_version()
        ),
        Dictionary::KeyDictionary => format!(
            "INSERT INTO tb_schema_settings (schema_version, product) VALUES ({}, 'CE');",
            d.schema_version()
        ),
    };
    format!(
        "CREATE TABLE tb_schema_settings (\n    schema_version bigint NOT NULL CONSTRAINT tb_schema_settings_pkey PRIMARY KEY{product}\n);\n{insert}\n"
    )
}

fn tenancy_sql(d: Dictionary) -> String {
    let v = entity_version(d);
    let customer_extra = match d {
        Dictionary::Legacy => "",
        Dictionary::KeyDictionary => ",\n    is_public boolean",
    };
    let customer_title = match d {
        Dictionary::Legacy => "",
        Dictionary::KeyDictionary => {
            ",\n    CONSTRAINT customer_title_unq_key UNIQUE (tenant_id, title)"
        }
    };
    format!(
        r#"CREATE TABLE tenant_profile (
    id uuid NOT NULL CONSTRAINT tenant_profile_pkey PRIMARY KEY,
    created_time bigint NOT NULL,
    name varchar(255),
    profile_data jsonb,
    description varchar,
    is_default boolean,
    isolated_tb_core boolean,
    isolated_tb_rule_engine boolean,
    CONSTRAINT tenant_profile_name_unq_key UNIQUE (name)
);
CREATE TABLE tenant (
    id uuid NOT NULL CONSTRAINT tenant_pkey PRIMARY KEY,
    created_time bigint NOT NULL,
    additional_info varchar,
    tenant_profile_id uuid NOT NULL,
    address varchar,
    address2 varchar,
    city varchar(255),
    country varchar(255),
    email varchar(255),
    phone varchar(255),
    region varchar(255),
    state varchar(255),
    title varchar(255),
    zip varchar(255){v}
);
CREATE TABLE customer (
    id uuid NOT NULL CONSTRAINT customer_pkey PRIMARY KEY,
    created_time bigint NOT NULL,
    additional_info varchar,
    address varchar,
    address2 varchar,
    city varchar(255),
    country varchar(255),
    email varchar(255),
    phone varchar(255),
    state varchar(255),
    tenant_id uuid,
    title varchar(255),
    zip varchar(255),
    external_id uuid{customer_extra}{v},
    CONSTRAINT customer_external_id_unq_key UNIQUE (tenant_id, external_id){customer_title}
);
CREATE TABLE tb_user (
    id uuid NOT NULL CONSTRAINT tb_user_pkey PRIMARY KEY,
    created_time bigint NOT NULL,
    additional_info varchar,
    authority varchar(255),
    customer_id uuid,
    email varchar(255) UNIQUE,
    first_name varchar(255),
    last_name varchar(255),
    phone varchar(255),
    tenant_id uuid{v}
);
CREATE TABLE api_usage_state (
    id uuid NOT NULL CONSTRAINT usage_record_pkey PRIMARY KEY,
    created_time bigint NOT NULL,
    tenant_id uuid,
    entity_type varchar(32),
    entity_id uuid,
    transport varchar(32),
    db_storage varchar(32),
    re_exec varchar(32),
    js_exec varchar(32),
    tbel_exec varchar(32),
    email_exec varchar(32),
    sms_exec varchar(32),
    alarm_exec varchar(32){v},
    CONSTRAINT api_usage_state_unq_key UNIQUE (tenant_id, entity_id)
);
"#
    )
}

fn profiles_sql(d: Dictionary) -> String {
    let v = entity_version(d);
    format!(
        r#"CREATE TABLE device_profile (
    id uuid NOT NULL CONSTRAINT device_profile_pkey PRIMARY KEY,
    created_time bigint NOT NULL,
    name varchar(255),
    type varchar(255),
    image varchar(1000000),
    transport_type varchar(255),
    provision_type varchar(255),
    profile_data jsonb,
    description varchar,
    is_default boolean,
    tenant_id uuid,
    firmware_id uuid,
    software_id uuid,
    default_rule_chain_id uuid,
    default_dashboard_id uuid,
    default_queue_name varchar(255),
    provision_device_key varchar,
    default_edge_rule_chain_id uuid,
    external_id uuid{v},
    CONSTRAINT device_profile_name_unq_key UNIQUE (tenant_id, name),
    CONSTRAINT device_provision_key_unq_key UNIQUE (provision_device_key),
    CONSTRAINT device_profile_external_id_unq_key UNIQUE (tenant_id, external_id)
);
CREATE TABLE asset_profile (
    id uuid NOT NULL CONSTRAINT asset_profile_pkey PRIMARY KEY,
    created_time bigint NOT NULL,
    name varchar(255),
    image varchar(1000000),
    description varchar,
    is_default boolean,
    tenant_id uuid,
    default_rule_chain_id uuid,
    default_dashboard_id uuid,
    default_queue_name varchar(255),
    default_edge_rule_chain_id uuid,
    external_id uuid{v},
    CONSTRAINT asset_profile_name_unq_key UNIQUE (tenant_id, name),
    CONSTRAINT asset_profile_external_id_unq_key UNIQUE (tenant_id, external_id)
);
"#
    )
}

fn entities_sql(d: Dictionary) -> String {
    let v = entity_version(d);
    let rv = row_version(d);
    let queue_stats = match d {
        Dictionary::Legacy => "",
        Dictionary::KeyDictionary => {
            r#"CREATE TABLE queue_stats (
    id uuid NOT NULL CONSTRAINT queue_stats_pkey PRIMARY KEY,
    created_time bigint NOT NULL,
    tenant_id uuid NOT NULL,
    queue_name varchar(255) NOT NULL,
    service_id varchar(255) NOT NULL,
    CONSTRAINT queue_stats_name_unq_key UNIQUE (tenant_id, queue_name, service_id)
);
"#
        }
    };
    let relation_seq = match d {
        Dictionary::Legacy => "",
        Dictionary::KeyDictionary => {
            "CREATE SEQUENCE IF NOT EXISTS relation_version_seq cache 1;\n"
        }
    };
    format!(
        r#"CREATE TABLE device (
    id uuid NOT NULL CONSTRAINT device_pkey PRIMARY KEY,
    created_time bigint NOT NULL,
    additional_info varchar,
    customer_id uuid,
    device_profile_id uuid NOT NULL,
    device_data jsonb,
    type varchar(255),
    name varchar(255),
    label varchar(255),
    tenant_id uuid,
    firmware_id uuid,
    software_id uuid,
    external_id uuid{v},
    CONSTRAINT device_name_unq_key UNIQUE (tenant_id, name),
    CONSTRAINT device_external_id_unq_key UNIQUE (tenant_id, external_id)
);
CREATE TABLE asset (
    id uuid NOT NULL CONSTRAINT asset_pkey PRIMARY KEY,
    created_time bigint NOT NULL,
    additional_info varchar,
    customer_id uuid,
    asset_profile_id uuid NOT NULL,
    name varchar(255),
    label varchar(255),
    tenant_id uuid,
    type varchar(255),
    external_id uuid{v},
    CONSTRAINT asset_name_unq_key UNIQUE (tenant_id, name),
    CONSTRAINT asset_external_id_unq_key UNIQUE (tenant_id, external_id)
);
CREATE TABLE entity_view (
    id uuid NOT NULL CONSTRAINT entity_view_pkey PRIMARY KEY,
    created_time bigint NOT NULL,
    entity_id uuid,
    entity_type varchar(255),
    tenant_id uuid,
    customer_id uuid,
    type varchar(255),
    name varchar(255),
    keys varchar(10000000),
    start_ts bigint,
    end_ts bigint,
    additional_info varchar,
    external_id uuid{v},
    CONSTRAINT entity_view_external_id_unq_key UNIQUE (tenant_id, external_id)
);
{queue_stats}{relation_seq}CREATE TABLE relation (
    from_id uuid,
    from_type varchar(255),
    to_id uuid,
    to_type varchar(255),
    relation_type_group varchar(255),
    relation_type varchar(255),
    additional_info varchar{rv},
    CONSTRAINT relation_pkey PRIMARY KEY (from_id, from_type, relation_type_group, relation_type, to_id, to_type)
);
"#
    )
}

fn key_values_sql(d: Dictionary) -> String {
    let attribute_kv = match d {
        Dictionary::Legacy => {
            r#"CREATE TABLE attribute_kv (
    entity_type varchar(255),
    entity_id uuid,
    attribute_type varchar(255),
    attribute_key varchar(255),
    bool_v boolean,
    str_v varchar(10000000),
    long_v bigint,
    dbl_v double precision,
    json_v json,
    last_update_ts bigint,
    CONSTRAINT attribute_kv_pkey PRIMARY KEY (entity_type, entity_id, attribute_type, attribute_key)
);
"#
        }
        Dictionary::KeyDictionary => {
            r#"CREATE SEQUENCE IF NOT EXISTS attribute_kv_version_seq cache 1;
CREATE TABLE attribute_kv (
    entity_id uuid,
    attribute_type int,
    attribute_key int,
    bool_v boolean,
    str_v varchar(10000000),
    long_v bigint,
    dbl_v double precision,
    json_v json,
    last_update_ts bigint,
    version bigint DEFAULT 0,
    CONSTRAINT attribute_kv_pkey PRIMARY KEY (entity_id, attribute_type, attribute_key)
);
"#
        }
    };
    let latest_seq = match d {
        Dictionary::Legacy => "",
        Dictionary::KeyDictionary => {
            "CREATE SEQUENCE IF NOT EXISTS ts_kv_latest_version_seq cache 1;\n"
        }
    };
    format!(
        r#"{attribute_kv}CREATE TABLE ts_kv (
    entity_id uuid NOT NULL,
    key int NOT NULL,
    ts bigint NOT NULL,
    bool_v boolean,
    str_v varchar(10000000),
    long_v bigint,
    dbl_v double precision,
    json_v json
) PARTITION BY RANGE (ts);
{latest_seq}CREATE TABLE ts_kv_latest (
    entity_id uuid NOT NULL,
    key int NOT NULL,
    ts bigint NOT NULL,
    bool_v boolean,
    str_v varchar(10000000),
    long_v bigint,
    dbl_v double precision,
    json_v json{rv},
    CONSTRAINT ts_kv_latest_pkey PRIMARY KEY (entity_id, key)
);
CREATE TABLE {table} (
    key varchar(255) NOT NULL,
    key_id serial UNIQUE,
    CONSTRAINT {pkey} PRIMARY KEY (key)
);
"#,
        rv = row_version(d),
        table = d.table_name(),
        pkey = d.pkey_name(),
    )
}
