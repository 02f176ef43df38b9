# bash completion for outboxd(8): its options from `outboxd --help`, file
# names for the ones that take a file.
_outboxd()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
    case $prev in
    --config | --*-file | --smtp-ca | --to)
        COMPREPLY=($(compgen -f -- "$cur"))
        return
        ;;
    --log-level)
        COMPREPLY=($(compgen -W "debug info warn error" -- "$cur"))
        return
        ;;
    --log-format)
        COMPREPLY=($(compgen -W "text json" -- "$cur"))
        return
        ;;
    esac
    if ((COMP_CWORD == 1)) && [[ $cur != -* ]]; then
        COMPREPLY=($(compgen -W "check migrate backup" -- "$cur"))
    else
        COMPREPLY=($(compgen -W "$("${COMP_WORDS[0]}" --help 2>/dev/null |
            grep -o -- '--[a-z][a-z-]*' | sort -u)" -- "$cur"))
    fi
}
complete -F _outboxd outboxd
