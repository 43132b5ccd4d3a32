/*
 * script.c - the Lua state of a worker and every call into it.
 *
 * The C core never calls Lua anywhere else. Each event becomes one
 * protected call of a function of moonwire.runtime (see docs/boundary.md)
 * with a traceback handler at a fixed stack slot; an error that escapes the
 * runtime's own protection is logged here with its traceback, and the
 * server carries on. App policy (routing, errors sent to clients, reload
 * semantics) lives in lua/moonwire/runtime.lua, not here.
 */
#include "script.h"
#include "../errors.h"
#include "../log.h"
#include "api.h"
#include "config_lua.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>

#define TRACEBACK_SLOT 1 /* the message handler sits at stack index 1 */

enum { FN_CONNECT, FN_MESSAGE, FN_DISCONNECT, FN_RELOAD, FN_START, FN_ROUTES, FN_COUNT };
static const char *const fn_names[FN_COUNT] = {"connect", "message", "disconnect",
                                               "reload",  "start",   "routes"};

struct mw_script {
    lua_State *L;
    int app_ref;        /* config.lua's `app` table, or LUA_NOREF */
    int fns[FN_COUNT];  /* refs to moonwire.runtime functions */
    int ready;
    uint64_t calls, calls_at_idle; /* events handled; the count at the last idle check */
};

static int traceback(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    if (!msg)
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    luaL_traceback(L, L, msg, 1);
    return 1;
}

int mw_script_create(mw_script_t **out, const char *luadir) {
    mw_script_t *sc = calloc(1, sizeof *sc);
    if (!sc)
        return MW_ENOMEM;
    sc->L = luaL_newstate();
    if (!sc->L) {
        free(sc);
        return MW_ENOMEM;
    }
    lua_State *L = sc->L;
    luaL_openlibs(L);
    lua_pushcfunction(L, traceback);
    /* stack: traceback */
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "path");
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s", luadir, luadir, lua_tostring(L, -1));
    lua_setfield(L, -3, "path");
    lua_pop(L, 2);
    mw_lua_inject_core_api(L);
    mw_lua_set_server(L, NULL);
    sc->app_ref = LUA_NOREF;
    for (int i = 0; i < FN_COUNT; i++)
        sc->fns[i] = LUA_NOREF;
    *out = sc;
    return 0;
}

int mw_script_load_config(mw_script_t *sc, const char *app_dir, mw_config_t *cfg, char *err,
                          size_t errlen) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.lua", app_dir);
    return mw_lua_load_config(sc->L, path, cfg, &sc->app_ref, err, errlen);
}

/* push_config builds the resolved config table runtime.init receives, from
 * the descriptor table, so a new option reaches Lua without code here. */
static void push_config(lua_State *L, const mw_config_t *cfg, int app_ref) {
    size_t n;
    const mw_config_desc_t *d = mw_config_descs(&n);
    lua_createtable(L, 0, (int)n);
    for (size_t i = 0; i < n; i++) {
        switch (d[i].type) {
        case MW_CONF_INT:
            lua_pushnumber(L, (lua_Number)mw_config_get_int(cfg, d[i].name));
            break;
        case MW_CONF_BOOL:
            lua_pushboolean(L, mw_config_get_bool(cfg, d[i].name));
            break;
        case MW_CONF_STRING:
            lua_pushstring(L, mw_config_get_string(cfg, d[i].name));
            break;
        case MW_CONF_STRLIST: {
            int count;
            char *const *items = mw_config_get_strlist(cfg, d[i].name, &count);
            lua_createtable(L, count, 0);
            for (int j = 0; j < count; j++) {
                lua_pushstring(L, items[j]);
                lua_rawseti(L, -2, j + 1);
            }
            break;
        }
        case MW_CONF_TABLE:
            if (app_ref != LUA_NOREF)
                lua_rawgeti(L, LUA_REGISTRYINDEX, app_ref);
            else
                lua_newtable(L);
            break;
        }
        lua_setfield(L, -2, d[i].name);
    }
}


/* call runs the function on top (with nargs above it) protected. On error
 * it copies the message to err (if given) or logs it. */
static int call(mw_script_t *sc, int nargs, int nresults, const char *what, char *err,
                size_t errlen) {
    lua_State *L = sc->L;
    sc->calls++;
    if (lua_pcall(L, nargs, nresults, TRACEBACK_SLOT) != 0) {
        const char *msg = lua_tostring(L, -1);
        if (err)
            snprintf(err, errlen, "%s", msg ? msg : "unknown error");
        else
            mw_log_error("lua error in %s: %s", what, msg ? msg : "unknown error");
        lua_pop(L, 1);
        return MW_ESCRIPT;
    }
    return 0;
}

/* first_line copies the first line of a traceback ("file:line: message"). */
static void first_line(char *err) {
    char *nl = strchr(err, '\n');
    if (nl)
        *nl = '\0';
}

int mw_script_init_app(mw_script_t *sc, mw_server_t *server, const char *app_dir,
                       const mw_config_t *cfg, const char *mode, char *err, size_t errlen) {
    lua_State *L = sc->L;
    mw_lua_set_server(L, server);
    lua_getglobal(L, "require");
    lua_pushstring(L, "moonwire.runtime");
    if (call(sc, 1, 1, "require", err, errlen) != 0)
        return MW_ESCRIPT;
    /* stack: traceback runtime */
    if (!lua_istable(L, -1)) {
        snprintf(err, errlen, "moonwire.runtime did not return a table");
        lua_settop(L, TRACEBACK_SLOT);
        return MW_ESCRIPT;
    }
    for (int i = 0; i < FN_COUNT; i++) {
        lua_getfield(L, -1, fn_names[i]);
        if (!lua_isfunction(L, -1)) {
            snprintf(err, errlen, "moonwire.runtime.%s is not a function", fn_names[i]);
            lua_settop(L, TRACEBACK_SLOT);
            return MW_ESCRIPT;
        }
        sc->fns[i] = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    lua_getfield(L, -1, "init");
    lua_createtable(L, 0, 3);
    lua_pushstring(L, app_dir);
    lua_setfield(L, -2, "app_dir");
    push_config(L, cfg, sc->app_ref);
    lua_setfield(L, -2, "config");
    lua_pushstring(L, mode);
    lua_setfield(L, -2, "mode");
    /* stack: traceback runtime init opts */
    if (call(sc, 1, 2, "init", err, errlen) != 0) {
        first_line(err);
        lua_settop(L, TRACEBACK_SLOT);
        return MW_ESCRIPT;
    }
    /* stack: traceback runtime ok err */
    int ok = lua_toboolean(L, -2);
    if (!ok)
        snprintf(err, errlen, "%s", lua_isstring(L, -1) ? lua_tostring(L, -1) : "app failed to load");
    lua_settop(L, TRACEBACK_SLOT);
    sc->ready = ok;
    return ok ? 0 : MW_ESCRIPT;
}

int mw_script_print_routes(mw_script_t *sc, FILE *out) {
    lua_State *L = sc->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, sc->fns[FN_ROUTES]);
    if (call(sc, 0, 1, "routes", NULL, 0) != 0)
        return MW_ESCRIPT;
    int n = 0;
    if (lua_istable(L, -1)) {
        n = (int)lua_objlen(L, -1);
        for (int i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, i);
            fprintf(out, "  %s\n", lua_tostring(L, -1));
            lua_pop(L, 1);
        }
    }
    lua_settop(L, TRACEBACK_SLOT);
    return n;
}

void mw_script_start(mw_script_t *sc) {
    if (!sc->ready)
        return;
    lua_rawgeti(sc->L, LUA_REGISTRYINDEX, sc->fns[FN_START]);
    call(sc, 0, 0, "start", NULL, 0);
}

/* Headers that only carried the handshake: they say nothing an app can use
 * and would cost every idle client a bigger Lua table. */
static int handshake_only(const char *name) {
    static const char *const skip[] = {"upgrade", "connection", "sec-websocket-key",
                                       "sec-websocket-version", "sec-websocket-extensions"};
    for (size_t i = 0; i < sizeof skip / sizeof skip[0]; i++)
        if (strcmp(name, skip[i]) == 0)
            return 1;
    return 0;
}

/* lower_name copies a header name lower-cased into out (256 bytes);
 * returns 0 when the name is too long to keep. */
static int lower_name(const char *name, char *out) {
    size_t n = strlen(name);
    if (n >= 256)
        return 0;
    for (size_t j = 0; j <= n; j++) {
        char ch = name[j];
        out[j] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
    }
    return 1;
}

static void push_headers(lua_State *L, const mw_client_info_t *info) {
    char name[256];
    int kept = 0;
    for (int i = 0; i < info->nheaders; i++)
        kept += lower_name(info->headers[i].name, name) && !handshake_only(name);
    /* Sized for what is kept: every idle client holds this table. */
    lua_createtable(L, 0, kept);
    for (int i = 0; i < info->nheaders; i++) {
        /* Lower-case names; repeated headers are joined with ", " (RFC 7230 3.2.2). */
        if (!lower_name(info->headers[i].name, name) || handshake_only(name))
            continue;
        lua_getfield(L, -1, name);
        if (lua_isstring(L, -1)) {
            lua_pushliteral(L, ", ");
            lua_pushstring(L, info->headers[i].value);
            lua_concat(L, 3);
        } else {
            lua_pop(L, 1);
            lua_pushstring(L, info->headers[i].value);
        }
        lua_setfield(L, -2, name);
    }
}

int mw_script_on_connect(mw_script_t *sc, uint64_t id, const mw_client_info_t *info, char *msg,
                         size_t msglen) {
    if (!sc->ready)
        return 0;
    lua_State *L = sc->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, sc->fns[FN_CONNECT]);
    lua_pushnumber(L, (lua_Number)id);
    lua_createtable(L, 0, 6);
    lua_pushstring(L, info->remote_addr);
    lua_setfield(L, -2, "remote_addr");
    lua_pushinteger(L, info->remote_port);
    lua_setfield(L, -2, "remote_port");
    lua_pushstring(L, info->path);
    lua_setfield(L, -2, "path");
    lua_pushstring(L, info->query);
    lua_setfield(L, -2, "query");
    if (info->subprotocol) {
        lua_pushstring(L, info->subprotocol);
        lua_setfield(L, -2, "subprotocol");
    }
    push_headers(L, info);
    lua_setfield(L, -2, "headers");
    if (call(sc, 2, 3, "connect", NULL, 0) != 0) {
        snprintf(msg, msglen, "internal error");
        return 500;
    }
    /* stack: ok status message; (false, status, message) refuses */
    int status = 0;
    if (lua_type(L, -3) == LUA_TBOOLEAN && !lua_toboolean(L, -3)) {
        lua_Number n = lua_tonumber(L, -2);
        status = n >= 400 && n <= 599 ? (int)n : 403;
        const char *m = lua_tostring(L, -1);
        snprintf(msg, msglen, "%s", m ? m : "forbidden");
    }
    lua_pop(L, 3);
    return status;
}

void mw_script_on_message(mw_script_t *sc, uint64_t id, int binary, const char *data,
                          size_t len) {
    if (!sc->ready)
        return;
    lua_State *L = sc->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, sc->fns[FN_MESSAGE]);
    lua_pushnumber(L, (lua_Number)id);
    lua_pushlstring(L, data, len);
    lua_pushboolean(L, binary);
    call(sc, 3, 0, "message", NULL, 0);
}

void mw_script_on_disconnect(mw_script_t *sc, uint64_t id, unsigned code, const char *reason,
                             size_t len) {
    if (!sc->ready)
        return;
    lua_State *L = sc->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, sc->fns[FN_DISCONNECT]);
    lua_pushnumber(L, (lua_Number)id);
    lua_pushinteger(L, (lua_Integer)code);
    lua_pushlstring(L, reason, len);
    call(sc, 3, 0, "disconnect", NULL, 0);
}

/* How much work one idle step does, in LuaJIT's units (as if this many KB
 * had been allocated): enough to finish a cycle over tens of MB within a
 * few seconds of quiet, small enough to stay well under a millisecond. */
#define IDLE_GC_STEP_KB 512

void mw_script_idle(mw_script_t *sc) {
    if (sc->calls != sc->calls_at_idle) {
        sc->calls_at_idle = sc->calls;
        return; /* busy: the allocation-driven collector is running anyway */
    }
    lua_gc(sc->L, LUA_GCSTEP, IDLE_GC_STEP_KB);
}

int mw_script_reload(mw_script_t *sc, char *err, size_t errlen) {
    if (!sc->ready) {
        snprintf(err, errlen, "the app is not loaded");
        return MW_ESCRIPT;
    }
    lua_State *L = sc->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, sc->fns[FN_RELOAD]);
    if (call(sc, 0, 2, "reload", err, errlen) != 0) {
        first_line(err);
        return MW_ESCRIPT;
    }
    int ok = lua_toboolean(L, -2);
    if (!ok)
        snprintf(err, errlen, "%s", lua_isstring(L, -1) ? lua_tostring(L, -1) : "reload failed");
    lua_settop(L, TRACEBACK_SLOT);
    return ok ? 0 : MW_ESCRIPT;
}

int mw_script_scaffold(mw_script_t *sc, const char *dir, char *err, size_t errlen) {
    lua_State *L = sc->L;
    lua_getglobal(L, "require");
    lua_pushstring(L, "moonwire.scaffold");
    if (call(sc, 1, 1, "require", err, errlen) != 0)
        return MW_ESCRIPT;
    lua_getfield(L, -1, "create");
    lua_pushstring(L, dir);
    if (call(sc, 1, 2, "scaffold", err, errlen) != 0) {
        lua_settop(L, TRACEBACK_SLOT);
        return MW_ESCRIPT;
    }
    int ok = lua_toboolean(L, -2);
    if (!ok)
        snprintf(err, errlen, "%s", lua_isstring(L, -1) ? lua_tostring(L, -1) : "failed");
    lua_settop(L, TRACEBACK_SLOT);
    return ok ? 0 : MW_ESCRIPT;
}

void mw_script_free(mw_script_t *sc) {
    if (!sc)
        return;
    lua_close(sc->L);
    free(sc);
}
