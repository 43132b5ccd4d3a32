# src/bench/bench.cmake - the load generator (moonwire-bench, installed) and
# the "limit" benchmark peer (moonwire-limit-peer, not installed). Included
# from the top CMakeLists.txt; uses its targets and found packages.

add_executable(moonwire-bench
  src/bench/bench.c src/bench/client.c src/bench/stats.c src/bench/tpl.c
  src/bench/echo.c src/bench/fanout.c src/bench/conns.c src/bench/procs.c)
target_link_libraries(moonwire-bench PRIVATE PkgConfig::LIBUV ${WSLAY_TARGET} ${MATH_LIB})
install(TARGETS moonwire-bench RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

add_executable(moonwire-limit-peer scripts/peers/limit/limit.c)
target_link_libraries(moonwire-limit-peer PRIVATE PkgConfig::LIBUV ${WSLAY_TARGET}
  OpenSSL::Crypto)
