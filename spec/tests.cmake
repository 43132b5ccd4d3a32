# spec/tests.cmake - every test, registered with CTest, grouped by feature.
#
#   c_*            C unit tests (spec/c/), white-box, one per module
#   lua_*          busted specs under LuaJIT: the runtime (spec/unit/) and
#                  each example app's own specs (through `moonwire test`)
#   integration_*  the real binary on a free loopback port, real clients
#                  (python3-websockets and raw sockets), spec/integration/
#   lint_*         checks over the source tree itself

find_program(MW_BUSTED busted REQUIRED)
find_program(MW_LUACHECK luacheck REQUIRED)          # Debian lua-check
find_program(MW_CLANG_FORMAT clang-format REQUIRED)  # Debian clang-format
# Debian's interpreter: it is the one python3-websockets is installed for.
find_program(MW_PYTHON python3 PATHS /usr/bin NO_DEFAULT_PATH REQUIRED)

# One integration suite: spec/integration/test_<suite>.py against the built
# binary; extra arguments, if any, go before the common ones.
function(mw_integration_test suite)
  add_test(NAME integration_${suite}
           COMMAND ${MW_PYTHON} ${PROJECT_SOURCE_DIR}/spec/integration/test_${suite}.py
                   ${ARGN} --binary $<TARGET_FILE:moonwire> --root ${PROJECT_SOURCE_DIR})
  set_tests_properties(integration_${suite} PROPERTIES TIMEOUT 300)
endfunction()

# --------------------------------------------------------------------------
# The source tree
# --------------------------------------------------------------------------

# The scripting boundary (docs/architecture.md): only src/lua/ may include
# the Lua headers. Fails listing any other file that does.
add_test(NAME lint_lua_boundary
         COMMAND sh -c "! grep -rlE '#include[[:space:]]*[<\"](lua|lauxlib|lualib|luajit)\\.h' \"$1/src\" | grep -v '/src/lua/'"
                 sh ${PROJECT_SOURCE_DIR})

# No merge left a conflict marker behind (one was committed once, in a doc).
add_test(NAME lint_conflict_markers
         COMMAND sh -c "! grep -rnE '^(<<<<<<<|>>>>>>>)( |$)' \"$1/src\" \"$1/lua\" \"$1/spec\" \"$1/docs\" \"$1/examples\" \"$1/scripts\" \"$1/README.md\" \"$1/CMakeLists.txt\""
                 sh ${PROJECT_SOURCE_DIR})

# The Lua of the runtime, the specs and the examples against .luacheckrc
# (busted's globals only in specs), warnings included.
add_test(NAME lint_luacheck
         COMMAND sh -c "exec \"$1\" --no-color --quiet lua spec examples .busted examples/*/.busted"
                 sh ${MW_LUACHECK}
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})

# Every C file under src/ and spec/ is as clang-format (.clang-format at the
# top) would write it; the failure lists each place that is not.
add_test(NAME lint_clang_format
         COMMAND sh -c "find src spec -name '*.[ch]' -print0 | xargs -0 \"$1\" --dry-run --Werror"
                 sh ${MW_CLANG_FORMAT}
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})

# The seam (src/app.h): no core file includes a src/lua/ header, and the
# core's modules form no include circle. Fails printing each offender.
add_test(NAME lint_core_seam
         COMMAND ${MW_PYTHON} ${PROJECT_SOURCE_DIR}/spec/lint_core_seam.py ${PROJECT_SOURCE_DIR}/src)

# docs/configuration.md documents exactly the options `moonwire --help`
# prints, and whether each needs a restart. Fails naming each that differs.
add_test(NAME lint_config_docs
         COMMAND ${MW_PYTHON} ${PROJECT_SOURCE_DIR}/spec/lint_config_docs.py
                 --binary $<TARGET_FILE:moonwire> --doc ${PROJECT_SOURCE_DIR}/docs/configuration.md)

# --------------------------------------------------------------------------
# C modules, one test per module
# --------------------------------------------------------------------------

include(${CMAKE_CURRENT_LIST_DIR}/c/tests.cmake)

# --------------------------------------------------------------------------
# The Lua runtime
# --------------------------------------------------------------------------

# --cpath: the real core as Lua C modules (build/lua/moonwire/core.so, and
# moonwire.jwt's primitives in build/lua/moonwire/core/jwt.so).
add_test(NAME lua_runtime COMMAND ${MW_BUSTED} --lua=luajit --cpath=${CMAKE_BINARY_DIR}/lua/?.so
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})

# --------------------------------------------------------------------------
# WebSocket protocol: handshake, framing, UTF-8, close codes, backpressure,
# and the close handshake on SIGTERM
# --------------------------------------------------------------------------

mw_integration_test(protocol)
mw_integration_test(shutdown)

# --------------------------------------------------------------------------
# HTTP and CLI: the JSON protocol with a real client, /health,
# subprotocols, the command line and config, live reload, the install
# --------------------------------------------------------------------------

mw_integration_test(flows)
mw_integration_test(cli)
mw_integration_test(reload)
mw_integration_test(metrics)
mw_integration_test(tasks)

# The Lua WebSocket client (moonwire.websocket): app code connecting to the
# server itself, a second moonwire, wss://, and Python peers that refuse,
# stay silent, answer wrongly, close mid-message or send too much.
mw_integration_test(wsclient)

# An app's HTTP routes (routes.lua: bodies, limits, keep-alive, 408, 500,
# /health replaced, reload) and the server API (/api/, api_key, api_port)
# with python3-websockets clients receiving what it sends.
mw_integration_test(http)
mw_integration_test(http_api)

# moonwire.redis in the binary against a real redis-server (killed and
# restarted during the test): calls, pub/sub, /metrics, fail fast.
mw_integration_test(redis)
# moonwire.nats in the binary against a real nats-server (killed during
# WebSocket traffic and restarted; subscriptions resume).
mw_integration_test(nats)

# The event bus: subscribers/*.lua in the real binary, POST /api/emit, the
# server's events, hot reload of subscribers, check and new subscriber.
mw_integration_test(subscribers)

# Nodes through Redis: two and three moonwire processes and one
# redis-server (killed and restarted during traffic; one node SIGKILLed).
mw_integration_test(cluster)

# workers = 2: the supervisor, worker restart after SIGKILL, SIGHUP and
# SIGTERM passed on, no orphans.
mw_integration_test(workers)

# workers = 2: /health and /metrics of the whole server from either worker
# (the stats zone), through a SIGSTOP and a SIGKILL and restart.
mw_integration_test(workers_metrics)

# The installed layout: the binary must find its runtime under
# <prefix>/share/moonwire/lua, and an app must load from there; the compiled
# Lua modules (moonwire/core.so, moonwire/core/jwt.so) go under
# <prefix>/<libdir>/moonwire/lua.
add_test(NAME integration_install
         COMMAND sh -c "rm -rf \"$1\" && cmake --install \"$2\" --prefix \"$1\" >/dev/null && \"$1/bin/moonwire\" check \"$3/examples/hello\" | grep -q greet.hello && test -f \"$1/share/moonwire/lua/moonwire/runtime.lua\" && test -f \"$1/${CMAKE_INSTALL_LIBDIR}/moonwire/lua/moonwire/core/jwt.so\" && test -f \"$1/${CMAKE_INSTALL_LIBDIR}/moonwire/lua/moonwire/core.so\""
                 sh ${CMAKE_CURRENT_BINARY_DIR}/install-test ${CMAKE_BINARY_DIR} ${PROJECT_SOURCE_DIR})

# --------------------------------------------------------------------------
# Rooms, presence and fan-out: fixtures/rooms/* and examples/chat
# --------------------------------------------------------------------------

mw_integration_test(rooms)

# --------------------------------------------------------------------------
# Security: authentication, JWT, limits, TLS, Lua isolation
# --------------------------------------------------------------------------

mw_integration_test(auth)

# JWT verification: moonwire.jwt inside the real server (the primitives from
# moonwire.core), and under `moonwire test`, which must put the compiled
# module on LUA_CPATH for plain busted. The fixture's keys are generated at
# test time by the openssl command-line tool.
mw_integration_test(jwt)
add_test(NAME lua_fixture_jwt
         COMMAND $<TARGET_FILE:moonwire> test ${PROJECT_SOURCE_DIR}/spec/integration/fixtures/jwt)

mw_integration_test(limits)

# wss://: certificates made at test time with the openssl CLI.
mw_integration_test(tls)

# Lua isolation: a controller that errors, loops forever or allocates
# without bound, each stopped alone (fixtures/isolation).
mw_integration_test(isolation)

# --------------------------------------------------------------------------
# Soak: well-behaved clients beside abusive ones, about a minute (half of it
# under the sanitizers, which are several times slower). Under ASan, RSS is
# not checked: its quarantine keeps freed memory (leaks are LeakSanitizer's
# job at exit).
# --------------------------------------------------------------------------

if(CMAKE_BUILD_TYPE STREQUAL "Sanitize")
  set(MW_SOAK_ARGS --seconds 30 --no-rss-check)
else()
  set(MW_SOAK_ARGS --seconds 60)
endif()
mw_integration_test(soak ${MW_SOAK_ARGS})

# --------------------------------------------------------------------------
# Benchmark: its smoke mode, moonwire-bench (found next to the moonwire
# binary) against examples/hub with tiny numbers; asserts correctness only.
# --------------------------------------------------------------------------

mw_integration_test(bench_smoke)
# The workers rows (issue 12): examples/hub with workers = 1 and 2, the
# server measured as all its processes (moonwire-bench --server-pid).
mw_integration_test(bench_workers)

# --------------------------------------------------------------------------
# Example apps: each one's own specs, through `moonwire test`
# --------------------------------------------------------------------------

# examples/gorilla-hub speaks guide 004 (the gorilla/websocket hub) to a
# real client, the limits set through the guide's WEBSOCKET_* variables.
mw_integration_test(gorilla_hub)

# examples/servercore speaks guide 002 (the ServerCore WebSocket protocol
# handler) to a real client, with tokens, roles and topic permissions in a
# real redis-server the test starts on a free port, stops and restarts.
mw_integration_test(servercore)

# examples/pxl-chat speaks the PXL guide (001) to real clients: JWT from
# ?token=, chat.send/typing, joinRoom/leaveRoom (also with
# clientCanJoinMultipleRooms false), inactive clients, and a backend's
# POST /api/emit reaching subscribers; the same app on two nodes sharing
# a redis-server, and with workers = 2 (the supervisor's hub, no Redis).
mw_integration_test(pxl_chat)
mw_integration_test(pxl_chat_nodes)
mw_integration_test(pxl_chat_workers)

# examples/trading-feed speaks the @aladdin/websocket guide (000) to real
# clients: connected, the auth message and authTimeout, subscribe and
# unsubscribe, the JSON ping/pong, the rate-limit error, the event cache,
# and NATS subjects (a real nats-server the test starts on a free port)
# broadcast to a channel's subscribers.
mw_integration_test(trading_feed)

foreach(app hello echo hub chat gorilla-hub servercore pxl-chat trading-feed)
  add_test(NAME lua_example_${app}
           COMMAND $<TARGET_FILE:moonwire> test ${PROJECT_SOURCE_DIR}/examples/${app})
endforeach()

# --------------------------------------------------------------------------
# Under ASan the compiled Lua modules (moonwire/core.so, on which every
# lua_* test runs, and core/jwt.so) need the ASan runtime loaded first,
# which LuaJIT (not instrumented) does not do: preload it for every lua_*
# test registered above (keep this block last). LuaJIT and busted exit
# without freeing everything, so leak checking is off there (the C tests
# and the server keep it).
# --------------------------------------------------------------------------

if(CMAKE_BUILD_TYPE STREQUAL "Sanitize")
  execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=libasan.so
                  OUTPUT_VARIABLE MW_LIBASAN OUTPUT_STRIP_TRAILING_WHITESPACE)
  get_property(mw_tests DIRECTORY PROPERTY TESTS)
  list(FILTER mw_tests INCLUDE REGEX "^lua_")
  set_tests_properties(${mw_tests} PROPERTIES
                       ENVIRONMENT "LD_PRELOAD=${MW_LIBASAN};ASAN_OPTIONS=detect_leaks=0")
endif()
