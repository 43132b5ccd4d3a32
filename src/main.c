/*
 * main.c - the moonwire command line.
 *
 *   moonwire serve [APP] [--host H] [--port P]   run an app
 *   moonwire check [APP]                          load an app, print its routes
 *   moonwire new NAME                             create an app skeleton
 *   moonwire test [APP]                           run the app's busted specs
 *   moonwire --version | --help
 *
 * main.c is where the core and the Lua side meet: it hands the script's
 * application callbacks (src/lua/script.h) to the server (src/server.h).
 *
 * Exit status: 0 success, 1 the app failed to load or the server failed,
 * 2 bad usage or bad configuration (the message names the key), 70
 * (MW_EXIT_SCRIPT_TIMEOUT) a call into Lua ran past script_timeout and could
 * not be interrupted (docs/security.md): restart the server.
 */
#include "config.h"
#include "errors.h"
#include "log.h"
#include "lua/script.h"
#include "paths.h"
#include "supervisor.h"
#include "server.h"
#include "shdict.h"
#include "aggregate.h"
#include "tls.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef MW_VERSION
#define MW_VERSION "0.0.0"
#endif

extern char **environ;

static void usage(FILE *f) {
    fprintf(
        f,
        "moonwire %s - a real-time WebSocket server scripted in Lua\n\n"
        "usage:\n"
        "  moonwire serve [APP] [--host HOST] [--port PORT]   run the app in folder APP (default "
        ".)\n"
        "  moonwire check [APP]                               load the app, print its routes and "
        "subscribers\n"
        "  moonwire new NAME                                  create an app skeleton in NAME\n"
        "  moonwire new subscriber NAME [APP]                 add an event-bus subscriber to APP\n"
        "  moonwire test [APP]                                run the app's busted specs\n"
        "  moonwire bench MODE [OPTIONS]                      the load generator (moonwire bench "
        "--help)\n"
        "  moonwire --version | --help\n\n"
        "Configuration comes from APP/config.lua, then MOONWIRE_<KEY> environment\n"
        "variables (e.g. MOONWIRE_PORT=9000), then --host/--port. Options:\n\n",
        MW_VERSION);
    mw_config_print_help(f);
}

typedef struct {
    const char *command;
    const char *app;
    const char *host, *port;
} cli_t;

static int parse_args(int argc, char **argv, cli_t *cli) {
    memset(cli, 0, sizeof *cli);
    cli->app = ".";
    int i = 1;
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    cli->command = argv[i++];
    int have_app = 0;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if ((!strcmp(a, "--host") || !strcmp(a, "--port")) && i + 1 < argc) {
            if (!strcmp(a, "--host"))
                cli->host = argv[++i];
            else
                cli->port = argv[++i];
        } else if (!strncmp(a, "--host=", 7)) {
            cli->host = a + 7;
        } else if (!strncmp(a, "--port=", 7)) {
            cli->port = a + 7;
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "moonwire: unknown option %s (see moonwire --help)\n", a);
            return 2;
        } else if (!have_app) {
            cli->app = a;
            have_app = 1;
        } else {
            fprintf(stderr, "moonwire: unexpected argument %s\n", a);
            return 2;
        }
    }
    return 0;
}

/* check_tls_files loads the certificate and key once, so a bad file is
 * reported like any other configuration error, before the app loads, and
 * by `moonwire check` too. The server loads its own copy. */
static int check_tls_files(const mw_config_t *cfg, char *err, size_t errlen) {
    mw_tls_ctx_t *ctx;
    if (!cfg->tls_cert[0])
        return 0;
    int rc =
        mw_tls_ctx_create(&ctx, cfg->tls_cert, cfg->tls_key, cfg->tls_min_version, err, errlen);
    if (rc == MW_ENOMEM)
        snprintf(err, errlen, "out of memory loading %s", cfg->tls_cert);
    if (rc == 0)
        mw_tls_ctx_free(ctx);
    return rc;
}

/* layer_config fills cfg (zeroed) from the defaults, config.lua, the
 * environment and the flags, in that order, and checks the result.
 * Returns 0, or MW_ECONFIG / MW_ENOMEM with err naming the key. */
static int layer_config(mw_script_t *sc, const cli_t *cli, mw_config_t *cfg, char *err,
                        size_t errlen) {
    int rc = mw_config_init(cfg);
    if (rc != 0) {
        snprintf(err, errlen, "out of memory");
        return rc;
    }
    if ((rc = mw_script_load_config(sc, cli->app, cfg, err, errlen)) != 0 ||
        (rc = mw_config_apply_env(cfg, environ, err, errlen)) != 0 ||
        (cli->host && (rc = mw_config_set_text(cfg, "host", cli->host, err, errlen)) != 0) ||
        (cli->port && (rc = mw_config_set_text(cfg, "port", cli->port, err, errlen)) != 0) ||
        (rc = mw_config_check(cfg, err, errlen)) != 0)
        return rc;
    return 0;
}

typedef struct {
    mw_script_t *sc;
    const cli_t *cli;
} reloader_t;

/* reload_config is the server's config loader: the same layers again. */
static int reload_config(void *data, mw_config_t *out, char *err, size_t errlen) {
    reloader_t *r = data;
    return layer_config(r->sc, r->cli, out, err, errlen);
}

/* load_config layers config.lua, the environment and flags into cfg. */
static int load_config(mw_script_t *sc, const cli_t *cli, mw_config_t *cfg) {
    char err[1024];
    memset(cfg, 0, sizeof *cfg);
    if (layer_config(sc, cli, cfg, err, sizeof err) != 0 ||
        check_tls_files(cfg, err, sizeof err) != 0) {
        fprintf(stderr, "moonwire: invalid configuration: %s\n", err);
        mw_config_free(cfg);
        return 2;
    }
    mw_log_configure((mw_log_level)mw_log_level_parse(cfg->log_level),
                     strcmp(cfg->log_format, "json") == 0);
    int rc = mw_script_set_limits(sc, cfg->lua_memory_limit, cfg->script_timeout);
    if (rc != 0) {
        fprintf(stderr, "moonwire: cannot start the script watchdog: %s\n", mw_strerror(rc));
        mw_config_free(cfg);
        return 1;
    }
    return 0;
}

static int app_exists(const char *app) {
    if (access(app, R_OK | X_OK) != 0) {
        fprintf(stderr, "moonwire: cannot open app folder %s\n", app);
        return 0;
    }
    return 1;
}

/* The command line, for the workers a supervisor starts (supervisor.h). */
static char **main_argv;

/* map_shdicts gives Lua the shared dicts: in a worker, the zones its
 * supervisor made (attached from the inherited memfds); otherwise cfg's,
 * made here. Returns the set, or NULL having logged why and freed cfg. */
static mw_shdicts_t *map_shdicts(mw_script_t *sc, mw_config_t *cfg) {
    mw_shdicts_t *dicts = NULL;
    int fds[MW_CONFIG_MAX_SUBPROTOCOLS];
    int nfds = mw_worker_shdict_fds(fds, MW_CONFIG_MAX_SUBPROTOCOLS);
    int rc = mw_worker_id() ? mw_shdicts_attach(&dicts, fds, nfds)
                            : mw_shdicts_create(&dicts, cfg->shared_dicts, cfg->nshared_dicts);
    if (rc != 0) {
        mw_log_error("cannot map shared_dicts: %s", mw_strerror(rc));
        mw_config_free(cfg);
        return NULL;
    }
    mw_script_set_shdicts(sc, dicts);
    return dicts;
}

static void unmap_shdicts(mw_script_t *sc, mw_shdicts_t *dicts) {
    mw_script_set_shdicts(sc, NULL);
    mw_shdicts_free(dicts);
}

static int cmd_serve(mw_script_t *sc, const cli_t *cli) {
    mw_config_t cfg;
    char err[2048];
    int rc = load_config(sc, cli, &cfg);
    if (rc)
        return rc;
    if (mw_worker_watch_parent() != 0) {
        mw_config_free(&cfg);
        return 1;
    }
    /* workers = 0 (the default): one per core, as nginx's "auto". The
     * config keeps 0, so that a reload reading 0 again sees no change. */
    int nworkers = cfg.workers;
    if (nworkers == 0) {
        unsigned cores = uv_available_parallelism();
        nworkers = cores > 64 ? 64 : (int)cores;
    }
    if (nworkers > 1 && !mw_worker_id()) {
        rc = mw_supervisor_run(&cfg, nworkers, main_argv);
        mw_config_free(&cfg);
        return rc;
    }
    mw_log_set_worker(mw_worker_id()); /* its errors at start too */
    mw_shdicts_t *dicts = map_shdicts(sc, &cfg);
    if (!dicts)
        return 1;
    uv_loop_t *loop = uv_default_loop();
    mw_server_t *server = NULL;
    if (mw_server_create(&server, loop, &cfg, cli->app, mw_script_app(sc)) != 0) {
        mw_log_error("out of memory");
        unmap_shdicts(sc, dicts);
        mw_config_free(&cfg);
        return 1;
    }
    if (mw_script_init_app(sc, server, cli->app, &cfg, "serve", err, sizeof err) != 0) {
        mw_log_error("cannot load the app in %s: %s", cli->app, err);
        mw_server_free(server);
        unmap_shdicts(sc, dicts);
        mw_config_free(&cfg);
        return 1;
    }
    int stats_fd = mw_worker_stats_fd();
    if (stats_fd >= 0 && (rc = mw_aggregate_attach(server, stats_fd, mw_worker_id())) != 0)
        mw_log_warn("cannot map the stats zone (%s): /health and /metrics show this worker only",
                    mw_strerror(rc));
    int limits_fd = mw_worker_limits_fd();
    if (limits_fd >= 0 && (rc = mw_server_attach_limits(server, limits_fd, mw_worker_id())) != 0)
        mw_log_warn("cannot map the connection counts (%s): the connection limits count this "
                    "worker's connections only",
                    mw_strerror(rc));
    reloader_t reloader = {sc, cli};
    mw_server_set_config_loader(server, reload_config, &reloader);
    mw_server_set_worker(server, mw_worker_id(), nworkers);
    int fds[MW_MAX_LISTENERS];
    int nfds = mw_worker_listen_fds(fds);
    if (nfds > 0)
        mw_server_set_listen_fds(server, fds, nfds);
    rc = mw_server_listen(server);
    if (rc == 0) {
        mw_server_arm(server);   /* before on_start: signals and file changes are caught */
        mw_server_start(server); /* its clock and timers, for on_start's */
        mw_script_start(sc);
        mw_worker_ready(); /* from here, an exit is a crash to restart */
        rc = mw_server_run(server);
    } else {
        rc = rc == MW_ECONFIG ? 2 : 1;
        uv_run(loop, UV_RUN_DEFAULT); /* lets the listener's close callback run */
    }
    mw_server_free(server);
    unmap_shdicts(sc, dicts);
    mw_config_free(&cfg);
    uv_loop_close(loop);
    return rc;
}

static int cmd_check(mw_script_t *sc, const cli_t *cli) {
    mw_config_t cfg;
    char err[2048];
    int rc = load_config(sc, cli, &cfg);
    if (rc)
        return rc;
    mw_shdicts_t *dicts = map_shdicts(sc, &cfg); /* so the app's top level finds them */
    if (!dicts)
        return 1;
    if (mw_script_init_app(sc, NULL, cli->app, &cfg, "check", err, sizeof err) != 0) {
        fprintf(stderr, "moonwire: %s: %s\n", cli->app, err);
        unmap_shdicts(sc, dicts);
        mw_config_free(&cfg);
        return 1;
    }
    printf("app %s: ok\nlistens on %s port %d, path %s\n", cli->app, cfg.host, cfg.port, cfg.path);
    if (cfg.tls_cert[0] && cfg.tls_port >= 0)
        printf("wss:// on port %d (ws:// on port %d), certificate %s\n", cfg.tls_port, cfg.port,
               cfg.tls_cert);
    else if (cfg.tls_cert[0])
        printf("wss:// on port %d, certificate %s\n", cfg.port, cfg.tls_cert);
    printf("routes:\n");
    int n = mw_script_print_routes(sc, stdout);
    if (n >= 0) {
        printf("subscribers:\n");
        n = mw_script_print_subscribers(sc, stdout);
    }
    unmap_shdicts(sc, dicts);
    mw_config_free(&cfg);
    return n < 0 ? 1 : 0;
}

/* moonwire new subscriber NAME [APP]: APP/subscribers/NAME.lua and a spec. */
static int cmd_new_subscriber(mw_script_t *sc, const char *name, const char *app) {
    char err[1024];
    if (mw_script_scaffold_subscriber(sc, app, name, err, sizeof err) != 0) {
        fprintf(stderr, "moonwire: new subscriber %s: %s\n", name, err);
        return 1;
    }
    printf("created %s/subscribers/%s.lua and %s/spec/%s_subscriber_spec.lua\n"
           "  list it:  moonwire check %s\n  test it:  moonwire test %s\n",
           app, name, app, name, app, app);
    return 0;
}

static int cmd_new(mw_script_t *sc, const cli_t *cli) {
    char err[1024];
    if (mw_script_scaffold(sc, cli->app, err, sizeof err) != 0) {
        fprintf(stderr, "moonwire: new %s: %s\n", cli->app, err);
        return 1;
    }
    printf("created %s\n  run it:   moonwire serve %s\n  test it:  moonwire test %s\n", cli->app,
           cli->app, cli->app);
    return 0;
}

static int cmd_test(const cli_t *cli, const char *luadir) {
    /* Specs run under plain busted + LuaJIT with the runtime on the path;
     * moonwire.testing runs the real core in-process (moonwire/core.so). */
    const char *old = getenv("LUA_PATH");
    size_t n = 2 * strlen(luadir) + (old ? strlen(old) : 1) + 64;
    char *path = malloc(n);
    if (!path)
        return 1;
    snprintf(path, n, "%s/?.lua;%s/?/init.lua;./?.lua;./?/init.lua;%s", luadir, luadir,
             old ? old : ";");
    setenv("LUA_PATH", path, 1);
    free(path);
    /* The compiled modules: moonwire.core (the core and its test driver)
     * and moonwire.core.jwt. */
    char cdir[4096];
    if (mw_paths_lua_cdir(cdir, sizeof cdir) == 0) {
        const char *oldc = getenv("LUA_CPATH");
        n = strlen(cdir) + (oldc ? strlen(oldc) : 2) + 16;
        path = malloc(n);
        if (!path)
            return 1;
        snprintf(path, n, "%s/?.so;%s", cdir, oldc ? oldc : ";");
        setenv("LUA_CPATH", path, 1);
        free(path);
    }
    if (chdir(cli->app) != 0) {
        fprintf(stderr, "moonwire: cannot enter %s\n", cli->app);
        return 2;
    }
    char *args[] = {"busted", "--lua=luajit", "spec", NULL};
    execvp("busted", args);
    fprintf(stderr, "moonwire: cannot run busted (install lua-busted)\n");
    return 1;
}

/* cmd_bench runs the load generator, a separate binary built and installed
 * beside this one, so the server never links benchmark code. */
static int cmd_bench(int argc, char **argv) {
    char exe[4096];
    size_t size = sizeof exe;
    if (uv_exepath(exe, &size) != 0) {
        fprintf(stderr, "moonwire: cannot find my own path\n");
        return 1;
    }
    char *slash = strrchr(exe, '/');
    if (!slash || (size_t)(slash - exe) + sizeof "/moonwire-bench" > sizeof exe) {
        fprintf(stderr, "moonwire: cannot find moonwire-bench\n");
        return 1;
    }
    strcpy(slash, "/moonwire-bench");
    argv[1] = exe;
    execv(exe, argv + 1);
    (void)argc;
    fprintf(stderr, "moonwire: cannot run %s (build the moonwire-bench target)\n", exe);
    return 1;
}

int main(int argc, char **argv) {
    main_argv = argv;
    /* A write to a peer that is gone (a client's reset socket, the hub
     * socket of a worker that exited) must fail with EPIPE on that one
     * connection, not kill the process with SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    if (argc >= 2 && (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-v"))) {
        printf("moonwire %s\n", MW_VERSION);
        return 0;
    }
    if (argc >= 2 &&
        (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help"))) {
        usage(stdout);
        return 0;
    }
    if (argc >= 2 && !strcmp(argv[1], "bench"))
        return cmd_bench(argc, argv);
    /* moonwire new subscriber NAME [APP]: parsed here, the rest as "new". */
    const char *sub_name = NULL, *sub_app = ".";
    if (argc >= 3 && !strcmp(argv[1], "new") && !strcmp(argv[2], "subscriber")) {
        if (argc < 4 || argc > 5) {
            fprintf(stderr, "moonwire: usage: moonwire new subscriber NAME [APP]\n");
            return 2;
        }
        sub_name = argv[3];
        if (argc == 5)
            sub_app = argv[4];
        if (!app_exists(sub_app))
            return 2;
        argc = 2;
    }
    cli_t cli;
    int rc = parse_args(argc, argv, &cli);
    if (rc)
        return rc;
    int known = !strcmp(cli.command, "serve") || !strcmp(cli.command, "check") ||
                !strcmp(cli.command, "new") || !strcmp(cli.command, "test");
    if (!known) {
        fprintf(stderr, "moonwire: unknown command \"%s\" (see moonwire --help)\n", cli.command);
        return 2;
    }
    if (!strcmp(cli.command, "new") && argc < 3 && !sub_name) {
        fprintf(stderr, "moonwire: usage: moonwire new NAME\n");
        return 2;
    }
    char luadir[4096];
    if (mw_paths_lua_dir(luadir, sizeof luadir) != 0) {
        fprintf(stderr,
                "moonwire: cannot find the runtime Lua files (tried %s); set "
                "MOONWIRE_LUA_DIR\n",
                luadir);
        return 1;
    }
    if (!strcmp(cli.command, "test"))
        return app_exists(cli.app) ? cmd_test(&cli, luadir) : 2;
    if (strcmp(cli.command, "new") != 0 && !app_exists(cli.app))
        return 2;
    mw_script_t *sc;
    if (mw_script_create(&sc, luadir) != 0) {
        fprintf(stderr, "moonwire: out of memory\n");
        return 1;
    }
    if (!strcmp(cli.command, "serve"))
        rc = cmd_serve(sc, &cli);
    else if (!strcmp(cli.command, "check"))
        rc = cmd_check(sc, &cli);
    else if (sub_name)
        rc = cmd_new_subscriber(sc, sub_name, sub_app);
    else
        rc = cmd_new(sc, &cli);
    mw_script_free(sc);
    return rc;
}
