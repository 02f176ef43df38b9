# embed.cmake - turn a file into a C array: cmake -DIN=file -DOUT=file.c
# -DNAME=symbol -P embed.cmake. Used for docs/openapi.json, which outboxd
# serves at /v1/openapi.json.
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" n)
math(EXPR len "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE "${OUT}" "/* Generated from ${IN} by cmake/embed.cmake: do not edit. */\n"
     "#include <stddef.h>\n"
     "const unsigned char ${NAME}[] = {${bytes}};\n"
     "const size_t ${NAME}_len = ${len};\n")
