# spec/tests.cmake - every test, registered with CTest.
#
#   c_*            C unit tests (spec/c/), white-box, one per module
#   lua_*          busted specs under LuaJIT: the runtime (spec/unit/) and
#                  each example app's own specs (through `moonwire test`)
#   integration_*  the real binary on a free loopback port, real clients
#                  (python3-websockets and raw sockets), spec/integration/

find_program(MW_BUSTED busted REQUIRED)
# Debian's interpreter: it is the one python3-websockets is installed for.
find_program(MW_PYTHON python3 PATHS /usr/bin NO_DEFAULT_PATH REQUIRED)

# --cpath: moonwire.jwt's C primitives as a Lua module (build/lua/moonwire/core/jwt.so).
add_test(NAME lua_runtime COMMAND ${MW_BUSTED} --lua=luajit --cpath=${CMAKE_BINARY_DIR}/lua/?.so
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
foreach(app hello echo)
  add_test(NAME lua_example_${app}
           COMMAND $<TARGET_FILE:moonwire> test ${PROJECT_SOURCE_DIR}/examples/${app})
endforeach()

foreach(suite protocol flows reload shutdown cli limits auth)
  add_test(NAME integration_${suite}
           COMMAND ${MW_PYTHON} ${PROJECT_SOURCE_DIR}/spec/integration/test_${suite}.py
                   --binary $<TARGET_FILE:moonwire> --root ${PROJECT_SOURCE_DIR})
  set_tests_properties(integration_${suite} PROPERTIES TIMEOUT 300)
endforeach()

# The installed layout: the binary must find its runtime under
# <prefix>/share/moonwire/lua, and an app must load from there; the compiled
# Lua module (moonwire/core/jwt.so) goes under <prefix>/<libdir>/moonwire/lua.
add_test(NAME integration_install
         COMMAND sh -c "rm -rf \"$1\" && cmake --install \"$2\" --prefix \"$1\" >/dev/null && \"$1/bin/moonwire\" check \"$3/examples/hello\" | grep -q greet.hello && test -f \"$1/share/moonwire/lua/moonwire/runtime.lua\" && test -f \"$1/${CMAKE_INSTALL_LIBDIR}/moonwire/lua/moonwire/core/jwt.so\""
                 sh ${CMAKE_CURRENT_BINARY_DIR}/install-test ${CMAKE_BINARY_DIR} ${PROJECT_SOURCE_DIR})

include(${CMAKE_CURRENT_LIST_DIR}/c/tests.cmake)

# The scripting boundary (docs/architecture.md): only src/lua/ may include
# the Lua headers. Fails listing any other file that does.
add_test(NAME lint_lua_boundary
         COMMAND sh -c "! grep -rlE '#include[[:space:]]*[<\"](lua|lauxlib|lualib|luajit)\\.h' \"$1/src\" | grep -v '/src/lua/'"
                 sh ${PROJECT_SOURCE_DIR})

# The seam (src/app.h): no core file includes a src/lua/ header, and the
# core's modules form no include circle. Fails printing each offender.
add_test(NAME lint_core_seam
         COMMAND ${MW_PYTHON} ${PROJECT_SOURCE_DIR}/spec/lint_core_seam.py ${PROJECT_SOURCE_DIR}/src)

# docs/configuration.md documents exactly the options `moonwire --help`
# prints, and whether each needs a restart. Fails naming each that differs.
add_test(NAME lint_config_docs
         COMMAND ${MW_PYTHON} ${PROJECT_SOURCE_DIR}/spec/lint_config_docs.py
                 --binary $<TARGET_FILE:moonwire> --doc ${PROJECT_SOURCE_DIR}/docs/configuration.md)

# The benchmark's smoke mode: moonwire-bench (found next to the moonwire
# binary) against examples/hub with tiny numbers; asserts correctness only.
add_test(NAME integration_bench_smoke
         COMMAND ${MW_PYTHON} ${PROJECT_SOURCE_DIR}/spec/integration/test_bench_smoke.py
                 --binary $<TARGET_FILE:moonwire> --root ${PROJECT_SOURCE_DIR})
set_tests_properties(integration_bench_smoke PROPERTIES TIMEOUT 300)
add_test(NAME lua_example_hub
         COMMAND $<TARGET_FILE:moonwire> test ${PROJECT_SOURCE_DIR}/examples/hub)

# Rooms, presence and fan-out (issue 3): fixtures/rooms/* and examples/chat.
add_test(NAME integration_rooms
         COMMAND ${MW_PYTHON} ${PROJECT_SOURCE_DIR}/spec/integration/test_rooms.py
                 --binary $<TARGET_FILE:moonwire> --root ${PROJECT_SOURCE_DIR})
set_tests_properties(integration_rooms PROPERTIES TIMEOUT 300)
add_test(NAME lua_example_chat
         COMMAND $<TARGET_FILE:moonwire> test ${PROJECT_SOURCE_DIR}/examples/chat)

# JWT verification (issue 4). moonwire.jwt inside the real server (the
# primitives from moonwire.core), and under `moonwire test`, which must put
# the compiled module on LUA_CPATH for plain busted. The fixture's keys are
# generated at test time by the openssl command-line tool.
add_test(NAME integration_jwt
         COMMAND ${MW_PYTHON} ${PROJECT_SOURCE_DIR}/spec/integration/test_jwt.py
                 --binary $<TARGET_FILE:moonwire> --root ${PROJECT_SOURCE_DIR})
set_tests_properties(integration_jwt PROPERTIES TIMEOUT 300)
add_test(NAME lua_fixture_jwt
         COMMAND $<TARGET_FILE:moonwire> test ${PROJECT_SOURCE_DIR}/spec/integration/fixtures/jwt)

# Under ASan the compiled Lua module needs the ASan runtime loaded first,
# which LuaJIT (not instrumented) does not do: preload it for the busted
# runs that load the module. LuaJIT and busted exit without freeing
# everything, so leak checking is off there (the C tests and the server
# keep it).
if(CMAKE_BUILD_TYPE STREQUAL "Sanitize")
  execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=libasan.so
                  OUTPUT_VARIABLE MW_LIBASAN OUTPUT_STRIP_TRAILING_WHITESPACE)
  set_tests_properties(lua_runtime lua_fixture_jwt PROPERTIES
                       ENVIRONMENT "LD_PRELOAD=${MW_LIBASAN};ASAN_OPTIONS=detect_leaks=0")
endif()

# The soak test (issue 4): well-behaved clients beside abusive ones, about a
# minute (half of it under the sanitizers, which are several times slower).
# Under ASan, RSS is not checked: its quarantine keeps freed memory (leaks
# are LeakSanitizer's job at exit).
if(CMAKE_BUILD_TYPE STREQUAL "Sanitize")
  set(MW_SOAK_ARGS --seconds 30 --no-rss-check)
else()
  set(MW_SOAK_ARGS --seconds 60)
endif()
add_test(NAME integration_soak
         COMMAND ${MW_PYTHON} ${PROJECT_SOURCE_DIR}/spec/integration/test_soak.py
                 ${MW_SOAK_ARGS}
                 --binary $<TARGET_FILE:moonwire> --root ${PROJECT_SOURCE_DIR})
set_tests_properties(integration_soak PROPERTIES TIMEOUT 300)

# wss:// (issue 4, TLS): certificates made at test time with the openssl CLI.
add_test(NAME integration_tls
         COMMAND ${MW_PYTHON} ${PROJECT_SOURCE_DIR}/spec/integration/test_tls.py
                 --binary $<TARGET_FILE:moonwire> --root ${PROJECT_SOURCE_DIR})
set_tests_properties(integration_tls PROPERTIES TIMEOUT 300)
# Lua isolation (issue 4): a controller that errors, loops forever or
# allocates without bound, each stopped alone (fixtures/isolation).
add_test(NAME integration_isolation
         COMMAND ${MW_PYTHON} ${PROJECT_SOURCE_DIR}/spec/integration/test_isolation.py
                 --binary $<TARGET_FILE:moonwire> --root ${PROJECT_SOURCE_DIR})
set_tests_properties(integration_isolation PROPERTIES TIMEOUT 300)
