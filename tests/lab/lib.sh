# Shell functions for lab scenarios (in the image as /usr/lib/lab/lib.sh): `. /usr/lib/lab/lib.sh`.

# write_synced FILE TAG [STOPFILE]: appends "line N" to FILE every 200 ms and prints
# "TAG-SYNCED N" once its fsync returned (the line is on stable storage: what an
# application would take as acknowledged), "TAG-WRITE-FAILED N" otherwise; until
# STOPFILE exists, or forever without one.
write_synced() {
    i=0
    while [ -z "${3:-}" ] || [ ! -e "$3" ]; do
        if echo "line $i" | dd of="$1" oflag=append conv=notrunc,fsync status=none 2>/dev/null; then
            echo "$2-SYNCED $i"
        else
            echo "$2-WRITE-FAILED $i"
        fi
        i=$((i + 1))
        sleep 0.2
    done
}
