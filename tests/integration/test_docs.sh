#!/usr/bin/env bash
# test_docs: the README's configuration table and .env.example list every
# CONSUMA_* variable the programs read (taken from consuma-fcgi --help, which
# prints config.c's table), with the same default; and the README names the
# two commands.
. "$(dirname "$0")/lib.sh"

help=$("$BUILD/consuma-fcgi" --help)
names=$(echo "$help" | awk '$1 ~ /^CONSUMA_/ { print $1 }')
assert_match "consuma-fcgi --help lists the variables" '^CONSUMA_' "$names"
while read -r name; do
	def=$(echo "$help" | awk -v n="$name" '$1 == n { sub(/.*\(default: /, ""); sub(/\)$/, ""); print }')
	row=$(grep -F "| \`$name\` |" "$SRC/README.md")
	if [ -z "$row" ]; then
		not_ok "README.md has no row for $name"
	elif [ -z "$def" ]; then
		case "$row" in *"| (empty) |"*) ok "README: $name (empty default)" ;;
		*) not_ok "README row of $name should say (empty): $row" ;; esac
	else
		case "$row" in *"| \`$def\` |"*) ok "README: $name default $def" ;;
		*) not_ok "README row of $name does not say default $def: $row" ;; esac
	fi
	if grep -Eq "^#? ?$name=" "$SRC/.env.example"; then
		ok ".env.example: $name"
	else
		not_ok ".env.example has no line for $name"
	fi
done <<<"$names"
grep -q 'tools/test.sh' "$SRC/README.md" && ok "README names tools/test.sh" ||
	not_ok "README does not name tools/test.sh"
grep -q 'tools/storm.sh' "$SRC/README.md" && ok "README names tools/storm.sh" ||
	not_ok "README does not name tools/storm.sh"
t_done
