# Shared by config and postinst (build-deb puts it in place of the #VALIDATE# line).
# A domain as rsendmail.conf(5) takes MAILNAME: labels of letters, digits and inner
# hyphens, 1 to 63 octets, joined by dots; or an address literal.
valid_mailname() {
    [ -n "$1" ] && [ "${#1}" -le 255 ] || return 1
    printf '%s\n' "$1" | grep -Eqx '\[[^][ ]+\]|[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*'
}
# SMARTHOST's hosts: name (letters, digits, inner hyphens, underscores), address or
# [literal], each with an optional :port; empty means none.
valid_relayhost() {
    set -f
    for h in $1; do
        printf '%s\n' "$h" | grep -Eqx '(\[[^][ ]+\]|[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*)(:[0-9]{1,5})?' || { set +f; return 1; }
        case $h in *:*) p=${h##*:}; [ "$p" -ge 1 ] && [ "$p" -le 65535 ] || { set +f; return 1; } ;; esac
    done
    set +f
}
