# embed_ui.cmake - the dashboard's files (ui/) as a table of C arrays:
# cmake -DDIR=ui -DOUT=ui_assets.c -DFILES=index.html,app.css,app.js
# -P embed_ui.cmake. Each asset gets its media type and an ETag (the
# first 16 hex digits of its SHA-256), so that outboxd serves the
# dashboard from its binary alone (src/api/ui.c).
string(REPLACE "," ";" FILES "${FILES}")
string(CONCAT body "/* Generated from ${DIR} by cmake/embed_ui.cmake: do not edit. */\n"
       "#include \"api/ui.h\"\n")
set(table "")
set(i 0)
foreach(f IN LISTS FILES)
  file(READ "${DIR}/${f}" hex HEX)
  file(SHA256 "${DIR}/${f}" sum)
  string(SUBSTRING "${sum}" 0 16 etag)
  string(LENGTH "${hex}" n)
  math(EXPR len "${n} / 2")
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  if(f MATCHES "\\.html$")
    set(type "text/html; charset=utf-8")
  elseif(f MATCHES "\\.css$")
    set(type "text/css; charset=utf-8")
  elseif(f MATCHES "\\.js$")
    set(type "text/javascript; charset=utf-8")
  elseif(f MATCHES "\\.svg$")
    set(type "image/svg+xml")
  elseif(f MATCHES "\\.png$")
    set(type "image/png")
  else()
    message(FATAL_ERROR "embed_ui.cmake: no media type for ${f}")
  endif()
  string(APPEND body "static const unsigned char a${i}[] = {${bytes}};\n")
  string(APPEND table "    {\"${f}\", \"${type}\", \"\\\"${etag}\\\"\", a${i}, ${len}},\n")
  math(EXPR i "${i} + 1")
endforeach()
string(APPEND body "const obi_ui_asset obi_ui_assets[] = {\n${table}};\n"
       "const int obi_ui_nassets = ${i};\n")
file(WRITE "${OUT}.tmp" "${body}")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
