# Shared by config and postinst (build-deb puts it in place of the #VALIDATE# line).
# The mail name: a domain name, as the question asks: labels of letters, digits and
# inner hyphens, 1 to 63 octets, joined by dots, the last one not all digits (an IPv4
# address is not a domain, and "user@192.0.2.1" is not a valid address); no address
# literal, not "localhost" in any case. `rsendmail-admin check` applies the same rule
# (mail_name_problem in src/message/address.rs, whose test runs this function). A
# host's own one-label name (the default on a host without a domain) is taken:
# `rsendmail-admin check` warns about it. A name with U-labels (bücher.example) is
# taken: each non-ASCII octet counts as a letter here (a shell has no IDNA); rsendmail
# uses the name's A-labels and refuses, with the reason, one that has none.
valid_mailname() {
    _mailname=$(printf '%s' "$1" | LC_ALL=C tr '\200-\377' 'a')
    [ -n "$_mailname" ] && [ "${#_mailname}" -le 255 ] || return 1
    printf '%s\n' "$_mailname" | grep -Eqx '[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*' || return 1
    case $(printf '%s' "$_mailname" | tr '[:upper:]' '[:lower:]') in localhost | localhost.localdomain) return 1 ;; esac
    case ${_mailname##*.} in *[!0-9]*) return 0 ;; *) return 1 ;; esac
}
# SMARTHOST's hosts: name (letters, digits, inner hyphens, underscores), address or
# [literal], each with an optional :port (after "]:" for a literal); empty means none.
# A bare number is not a host ("smtp.example.net 587" is a typo for ":587").
valid_relayhost() {
    set -f
    for h in $1; do
        valid_relay_word "$h" || { set +f; return 1; }
    done
    set +f
}
valid_relay_word() {
    printf '%s\n' "$1" | grep -Eqx '(\[[^][ ]+\]|[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*)(:[0-9]{1,5})?' || return 1
    case $1 in
        \[*\]) return 0 ;;
        \[*\]:*) p=${1##*\]:} ;;
        *:*) p=${1##*:} ;;
        *[!0-9]*) return 0 ;;
        *) return 1 ;;
    esac
    case ${1%:*} in *[!0-9]*) ;; *) return 1 ;; esac
    [ "$p" -ge 1 ] && [ "$p" -le 65535 ]
}
