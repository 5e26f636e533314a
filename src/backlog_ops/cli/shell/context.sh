# backlog-ops shell helper. Source it:   source "$(backlog-ops context shell-helper)"
#
#   set_backlog_context TICKET GATE AGENT [SKILL]   (the design's arguments; TICKET may be "")
#   clear_backlog_context
#   get_backlog_context                             (prints the context in force as JSON)
#
# Every function calls the backlog-ops CLI, which validates, locks, writes atomically and keeps
# the history and the project's audit copy. Inside a Claude Code session, set
# BACKLOG_SESSION_ID (and BACKLOG_AGENT_ID in a subagent) to scope the context to it; otherwise
# the global context is used. Extra CLI options (--project, --component, --ttl) may follow SKILL.

_backlog_scope_args() {
    if [ -n "${BACKLOG_SESSION_ID:-}" ]; then
        printf '%s\n' --session "$BACKLOG_SESSION_ID"
        if [ -n "${BACKLOG_AGENT_ID:-}" ]; then
            printf '%s\n' --agent-id "$BACKLOG_AGENT_ID"
        fi
    fi
}

set_backlog_context() {
    if [ "$#" -lt 3 ]; then
        echo "usage: set_backlog_context TICKET GATE AGENT [SKILL] [--project P] [--component C] [--ttl SECONDS]" >&2
        return 2
    fi
    local ticket="$1" gate="$2" agent="$3"
    shift 3
    local skill="${CURRENT_SKILL:-}"
    if [ "$#" -gt 0 ] && [ "${1#--}" = "$1" ]; then
        skill="$1"
        shift
    fi
    local -a scope
    mapfile -t scope < <(_backlog_scope_args)
    if [ -n "$skill" ]; then
        backlog-ops context set "$ticket" "$gate" "$agent" --skill "$skill" "${scope[@]}" "$@"
    else
        backlog-ops context set "$ticket" "$gate" "$agent" "${scope[@]}" "$@"
    fi
}

clear_backlog_context() {
    local -a scope
    mapfile -t scope < <(_backlog_scope_args)
    backlog-ops context clear "${scope[@]}" "$@"
}

get_backlog_context() {
    local -a scope
    mapfile -t scope < <(_backlog_scope_args)
    backlog-ops context show --json "${scope[@]}" "$@"
}
