#!/bin/sh
# xCAT's option 6 with hamn: the Pacemaker configuration of two management nodes whose
# xCAT data is mirrored by DRBD, as hamn(8) describes it (MIRRORED DATA UNDER
# PACEMAKER). Run it once, as root, on one node of the running cluster (Corosync and
# Pacemaker started on both, the DRBD resource created and in sync, nothing configured
# yet); or build a CIB file offline with CIB_file=cib.xml. Uses only Pacemaker's own C
# tools (cibadmin, crm_attribute); hamn(8) gives the same as pcs and crmsh commands.
# The storage lab loads this very file (tests/lab_drbd.rs).
#
# Each node's /etc/hamn/hamn.toml lists the other as its peer with `fencing = ["power"]`
# and its BMC (the password in /etc/hamn, mode 0600, never in the CIB), and the mirror
# as [[takeover.drbd]]: the cluster promotes it (ocf:linbit:drbd) before hamn's takeover
# starts, which then finds it Primary, fences the peer's power (or sees it Secondary and
# connected on a planned move), checks, mounts and serves.
set -e
NODE1=${NODE1:-mn1} # preferred: the xCAT data starts there
NODE2=${NODE2:-mn2}
CONFIG=${CONFIG:-/etc/hamn/hamn.toml}
RESOURCE=${RESOURCE:-xcat} # the resource's name in drbd.conf

crm_attribute --type crm_config --name stonith-enabled --update true

for node in "$NODE1" "$NODE2"; do
    # The node's BMC: there is no storage level, a local disk has no reservation. A
    # fenced management node stays off until the admin has looked at it (Pacemaker's
    # default reboot becomes off). standby_delay: the node whose copy is Primary is
    # powered off at once, the other after 15 s, so a cut cluster link leaves one node
    # (fence_hamn(8), TWO NODES).
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
    # A node never runs the device that fences it.
    cibadmin -C -o constraints --xml-text "
<rsc_location id=\"fence-$node-not-on-$node\" rsc=\"fence-$node\" node=\"$node\" score=\"-INFINITY\"/>"
done

# The mirror: one Primary at most, on the node that serves. Pacemaker promotes it only
# after the other node is fenced or has demoted it.
cibadmin -C -o resources --xml-text "
<clone id=\"drbd-$RESOURCE-clone\">
  <meta_attributes id=\"drbd-$RESOURCE-clone-meta\">
    <nvpair id=\"drbd-$RESOURCE-promotable\" name=\"promotable\" value=\"true\"/>
    <nvpair id=\"drbd-$RESOURCE-promoted-max\" name=\"promoted-max\" value=\"1\"/>
    <nvpair id=\"drbd-$RESOURCE-promoted-node-max\" name=\"promoted-node-max\" value=\"1\"/>
    <nvpair id=\"drbd-$RESOURCE-clone-max\" name=\"clone-max\" value=\"2\"/>
    <nvpair id=\"drbd-$RESOURCE-clone-node-max\" name=\"clone-node-max\" value=\"1\"/>
    <nvpair id=\"drbd-$RESOURCE-notify\" name=\"notify\" value=\"true\"/>
  </meta_attributes>
  <primitive id=\"drbd-$RESOURCE\" class=\"ocf\" provider=\"linbit\" type=\"drbd\">
    <instance_attributes id=\"drbd-$RESOURCE-ia\">
      <nvpair id=\"drbd-$RESOURCE-resource\" name=\"drbd_resource\" value=\"$RESOURCE\"/>
    </instance_attributes>
    <operations>
      <op id=\"drbd-$RESOURCE-monitor-promoted\" name=\"monitor\" interval=\"29s\" role=\"Promoted\"/>
      <op id=\"drbd-$RESOURCE-monitor-unpromoted\" name=\"monitor\" interval=\"31s\" role=\"Unpromoted\"/>
    </operations>
  </primitive>
</clone>"

# The xCAT management node's role, where the mirror is Primary and only once it is.
# Its start checks every file system, so its timeout covers the checks of a large
# /install; it stays where it runs (stickiness 1000 outweighs the preference of 50).
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
<rsc_colocation id=\"xcat-mn-with-drbd-$RESOURCE-promoted\" rsc=\"xcat-mn\" with-rsc=\"drbd-$RESOURCE-clone\" with-rsc-role=\"Promoted\" score=\"INFINITY\"/>"
cibadmin -C -o constraints --xml-text "
<rsc_order id=\"drbd-$RESOURCE-promote-before-xcat-mn\" first=\"drbd-$RESOURCE-clone\" first-action=\"promote\" then=\"xcat-mn\" then-action=\"start\" kind=\"Mandatory\"/>"
cibadmin -C -o constraints --xml-text "
<rsc_location id=\"xcat-mn-prefers-$NODE1\" rsc=\"xcat-mn\" node=\"$NODE1\" score=\"50\"/>"
