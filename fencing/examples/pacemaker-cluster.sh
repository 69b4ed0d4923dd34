#!/bin/sh
# xCAT's option 5 with hamn: the Pacemaker configuration of two management nodes sharing
# the xCAT data on SAN LUNs, as hamn(8) describes it. Run it once, as root, on one node
# of the running cluster (Corosync and Pacemaker started on both, nothing configured
# yet); or build a CIB file offline with CIB_file=cib.xml. Uses only Pacemaker's own C
# tools (cibadmin, crm_attribute); hamn(8) gives the same as pcs and crmsh commands.
# The storage lab loads this very file (tests/lab_cluster.rs).
#
# Each node's /etc/hamn/hamn.toml lists the other as its peer, with `fencing =
# ["storage"]` (Pacemaker has powered the peer off before it starts the takeover) and the
# peer's BMC (its password in /etc/hamn, mode 0600, never in the CIB).
set -e
NODE1=${NODE1:-mn1} # preferred: the xCAT data starts there
NODE2=${NODE2:-mn2}
CONFIG=${CONFIG:-/etc/hamn/hamn.toml}

crm_attribute --type crm_config --name stonith-enabled --update true

for node in "$NODE1" "$NODE2"; do
    # Level 1: the node's BMC. A fenced management node stays off until the admin has
    # looked at it (Pacemaker's default reboot becomes off); hamn status raises an alarm
    # if it runs again. standby_delay: the node that serves is powered off at once, the
    # standby after 15 s, so a cut cluster link leaves one node (fence_hamn(8), TWO NODES).
    cibadmin -C -o resources --xml-text "
<primitive id=\"fence-$node\" class=\"stonith\" type=\"fence_hamn\">
  <instance_attributes id=\"fence-$node-ia\">
    <nvpair id=\"fence-$node-hosts\" name=\"pcmk_host_list\" value=\"$node\"/>
    <nvpair id=\"fence-$node-config\" name=\"config\" value=\"$CONFIG\"/>
    <nvpair id=\"fence-$node-reboot\" name=\"pcmk_reboot_action\" value=\"off\"/>
    <nvpair id=\"fence-$node-standby-delay\" name=\"standby_delay\" value=\"15\"/>
  </instance_attributes>
  <operations>
    <op id=\"fence-$node-monitor\" name=\"monitor\" interval=\"60s\"/>
  </operations>
</primitive>"
    # Level 2, when the BMC died with the node: its key preempted on every path of the
    # shared LUNs. It may still run, but can no longer write.
    cibadmin -C -o resources --xml-text "
<primitive id=\"fence-$node-storage\" class=\"stonith\" type=\"fence_hamn\">
  <instance_attributes id=\"fence-$node-storage-ia\">
    <nvpair id=\"fence-$node-storage-hosts\" name=\"pcmk_host_list\" value=\"$node\"/>
    <nvpair id=\"fence-$node-storage-config\" name=\"config\" value=\"$CONFIG\"/>
    <nvpair id=\"fence-$node-storage-fencing\" name=\"fencing\" value=\"storage\"/>
    <nvpair id=\"fence-$node-storage-reboot\" name=\"pcmk_reboot_action\" value=\"off\"/>
  </instance_attributes>
  <operations>
    <op id=\"fence-$node-storage-monitor\" name=\"monitor\" interval=\"60s\"/>
  </operations>
</primitive>"
    # A node never runs the devices that fence it.
    cibadmin -C -o constraints --xml-text "
<rsc_location id=\"fence-$node-not-on-$node\" rsc=\"fence-$node\" node=\"$node\" score=\"-INFINITY\"/>"
    cibadmin -C -o constraints --xml-text "
<rsc_location id=\"fence-$node-storage-not-on-$node\" rsc=\"fence-$node-storage\" node=\"$node\" score=\"-INFINITY\"/>"
done

cibadmin -C -o configuration --xml-text "
<fencing-topology>
  <fencing-level id=\"fencing-$NODE1-1\" target=\"$NODE1\" index=\"1\" devices=\"fence-$NODE1\"/>
  <fencing-level id=\"fencing-$NODE1-2\" target=\"$NODE1\" index=\"2\" devices=\"fence-$NODE1-storage\"/>
  <fencing-level id=\"fencing-$NODE2-1\" target=\"$NODE2\" index=\"1\" devices=\"fence-$NODE2\"/>
  <fencing-level id=\"fencing-$NODE2-2\" target=\"$NODE2\" index=\"2\" devices=\"fence-$NODE2-storage\"/>
</fencing-topology>"

# The xCAT management node's role. The start checks every file system, so its timeout
# covers the checks of a large /install; it stays where it runs (no automatic failback:
# stickiness 1000 outweighs the preference of 50, yet not a move's INFINITY, with which
# INFINITY would tie, so that `crm_resource --move` would do nothing).
cibadmin -C -o resources --xml-text "
<primitive id=\"xcat-mn\" class=\"ocf\" provider=\"hamn\" type=\"takeover\">
  <instance_attributes id=\"xcat-mn-ia\">
    <nvpair id=\"xcat-mn-config\" name=\"config\" value=\"$CONFIG\"/>
  </instance_attributes>
  <meta_attributes id=\"xcat-mn-meta\">
    <nvpair id=\"xcat-mn-stickiness\" name=\"resource-stickiness\" value=\"1000\"/>
  </meta_attributes>
  <operations>
    <op id=\"xcat-mn-start\" name=\"start\" interval=\"0s\" timeout=\"1800s\"/>
    <op id=\"xcat-mn-stop\" name=\"stop\" interval=\"0s\" timeout=\"600s\"/>
    <op id=\"xcat-mn-monitor\" name=\"monitor\" interval=\"20s\" timeout=\"60s\"/>
  </operations>
</primitive>"
cibadmin -C -o constraints --xml-text "
<rsc_location id=\"xcat-mn-prefers-$NODE1\" rsc=\"xcat-mn\" node=\"$NODE1\" score=\"50\"/>"
