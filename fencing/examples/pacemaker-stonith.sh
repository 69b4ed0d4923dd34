#!/bin/sh
# Two xCAT management nodes, mn1 and mn2, each able to fence the other through hamn.
# Built with Pacemaker's own C tools (no pcs or crmsh needed). Each node's hamn.toml lists
# the other as a peer; the BMC passwords stay in /etc/hamn (mode 0600), not in the CIB.
set -e
cibadmin -C -o resources --xml-text '
<primitive id="fence-mn1" class="stonith" type="fence_hamn">
  <instance_attributes id="fence-mn1-ia">
    <nvpair id="fence-mn1-hosts" name="pcmk_host_list" value="mn1"/>
    <nvpair id="fence-mn1-config" name="config" value="/etc/hamn/hamn.toml"/>
    <!-- mn1 is fenced only after 5 s: if both nodes shoot at once, mn2 loses the race
         it started later, and mn1 survives instead of both going down. -->
    <nvpair id="fence-mn1-delay" name="delay" value="5"/>
  </instance_attributes>
</primitive>'
cibadmin -C -o resources --xml-text '
<primitive id="fence-mn2" class="stonith" type="fence_hamn">
  <instance_attributes id="fence-mn2-ia">
    <nvpair id="fence-mn2-hosts" name="pcmk_host_list" value="mn2"/>
    <nvpair id="fence-mn2-config" name="config" value="/etc/hamn/hamn.toml"/>
  </instance_attributes>
</primitive>'
# A node never runs the device that fences itself.
crm_resource --resource fence-mn1 --ban --node mn1 --force
crm_resource --resource fence-mn2 --ban --node mn2 --force
crm_attribute --type crm_config --name stonith-enabled --update true
