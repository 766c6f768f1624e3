# The lab's own test (tests/vm/lab_test.sh): a scenario that fails. Its
# output, exit status and the guest's journal must come back to the host.
echo "lab-selftest: this scenario fails on purpose"
logger -t lab-selftest "a line only the journal has"
exit 3
