# SPDX-License-Identifier: Apache-2.0
# telemetry: libmosquitto (TLS through OpenSSL) and libpavise-app-tls (the device's key, which
# signs through the runtime). Included by the top CMakeLists.txt inside its loop over apps/,
# with ${app} and ${dir} set. The broker's CA goes into the image as etc/broker-ca.pem when
# the developer has put one in apps/telemetry/etc/.
if(NOT LIBMOSQUITTO_FOUND)
  message(FATAL_ERROR "apps/telemetry needs libmosquitto (libmosquitto-dev; scripts/install-deps)")
endif()
if(PV_SANITIZE)
  target_link_libraries(app-${app} PRIVATE pavise-app-tls-plain)
else()
  target_link_libraries(app-${app} PRIVATE pavise-app-tls)
endif()
target_link_libraries(app-${app} PRIVATE PkgConfig::LIBMOSQUITTO OpenSSL::SSL)
if(EXISTS ${dir}/etc/broker-ca.pem)
  configure_file(${dir}/etc/broker-ca.pem ${CMAKE_BINARY_DIR}/apps/${app}/etc/broker-ca.pem
                 COPYONLY)
endif()
