# bash completion for outbox(1). Verbs and options come from the installed
# command's own --help (outbox --help, outbox VERB [SUB] --help), so the
# completion cannot drift from the tool.
_outbox()
{
    local cur prev words cword
    _init_completion 2>/dev/null || {
        cur=${COMP_WORDS[COMP_CWORD]}
        prev=${COMP_WORDS[COMP_CWORD - 1]}
        words=("${COMP_WORDS[@]}")
        cword=$COMP_CWORD
    }
    local cmd=${words[0]}
    case $prev in
    --token-file | --payload-file | --attach | --html-file | --text-file)
        COMPREPLY=($(compgen -f -- "$cur"))
        return
        ;;
    esac
    # the operands so far (options and their values skipped)
    local ops=() i
    for ((i = 1; i < cword; i++)); do
        case ${words[i]} in
        --json) ;;
        --*=*) ;;
        --*) ((i++)) ;;
        *) ops+=("${words[i]}") ;;
        esac
    done
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$("$cmd" "${ops[@]}" --help 2>/dev/null |
            grep -o -- '--[a-z][a-z-]*' | sort -u)" -- "$cur"))
    elif ((${#ops[@]} == 0)); then
        COMPREPLY=($(compgen -W "$("$cmd" --help 2>/dev/null |
            awk '/^  [a-z]/ { print $1 }' | sort -u)" -- "$cur"))
    elif ((${#ops[@]} == 1)); then
        COMPREPLY=($(compgen -W "$("$cmd" --help 2>/dev/null |
            awk -v v="${ops[0]}" '$1 == v { n = split($2, s, "|"); for (i = 1; i <= n; i++) print s[i] }' |
            grep -v '^\[' | sort -u)" -- "$cur"))
    fi
}
complete -F _outbox outbox
