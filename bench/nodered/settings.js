// Node-RED settings of the ingest benchmark's peer flows. Node-RED runs headless:
// no editor, no admin API, no HTTP port, no telemetry or update checks, and no
// module installs, so it talks only to the benchmark's broker and database.
//
// Environment: BENCH_MQTT_PORT, BENCH_CLIENT_ID and BENCH_TOPIC for the broker
// node, BENCH_SQLITE_PATH for the SQLite flow, BENCH_PG_URL for the PostgreSQL one.

const pg = require("pg");

const pgUrl = process.env.BENCH_PG_URL;

module.exports = {
    uiHost: "127.0.0.1",
    httpRoot: false,
    httpAdminRoot: false,
    httpNodeRoot: false,
    credentialSecret: false,
    diagnostics: { enabled: false, ui: false },
    runtimeState: { enabled: false, ui: false },
    telemetry: { enabled: false, updateNotification: false },
    externalModules: {
        autoInstall: false,
        palette: { allowInstall: false },
        modules: { allowInstall: false },
    },
    functionExternalModules: false,
    // One pool with pg's default size (10 connections) for the PostgreSQL flow.
    functionGlobalContext: {
        pgPool: pgUrl ? new pg.Pool({ connectionString: pgUrl }) : null,
    },
    logging: { console: { level: "warn", metrics: false, audit: false } },
    editorTheme: { projects: { enabled: false } },
};
