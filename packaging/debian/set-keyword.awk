# Used by postinst (installed as /usr/share/rsendmail/set-keyword.awk):
#   awk -v k=KEYWORD -v v=VALUE -f set-keyword.awk FILE FILE
# prints FILE with its active KEYWORD lines reading "KEYWORD VALUE" (a line that already
# has that value stays as written, with its comment), or commented out for an empty
# VALUE; with none, the first commented-out "#KEYWORD" line becomes it, else it is
# appended. Every other line is printed as it is. The first pass over FILE only looks.
function word1(s,   t, w) { t = s; sub(/#.*/, "", t); return split(t, w) ? w[1] : "" }
function value(s,   t) {
    t = s; sub(/#.*/, "", t); sub(/^[ \t]*[^ \t]+[ \t]*/, "", t); sub(/[ \t]+$/, "", t)
    gsub(/[ \t]+/, " ", t); return t
}
function commented(s,   t) {
    if (s !~ /^[ \t]*#/) return 0
    t = s; sub(/^[ \t]*#+[ \t]*/, "", t); return word1(t) == k
}
NR == FNR { if (word1($0) == k) act = 1; else if (!cm && commented($0)) cm = FNR; next }
word1($0) == k {
    if (v == "") print "#" $0; else if (value($0) == v) print; else print k " " v
    next
}
!act && v != "" && FNR == cm { print k " " v; next }
{ print }
END { if (!act && !cm && v != "") print k " " v }
