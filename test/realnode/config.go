package realnode

import (
	"fmt"
	"os"
	"path/filepath"
)

// containerdConfig is containerd 1.6's CRI configuration. Everything lives
// under the node's directory, runc's state included, so that a later run
// finds and removes what a killed one left.
func (n *Node) containerdConfig() string {
	return fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
[grpc]
  address = %[3]q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[4]q
  enable_selinux = false
  # The sandbox lacks CAP_SYS_RESOURCE: runc cannot lower oom_score_adj.
  restrict_oom_score_adj = true
  # Pod network namespaces under the state directory, not /run/netns.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = %[5]q
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %[6]q
`, filepath.Join(n.dir, "containerd"), filepath.Join(n.dir, "run", "containerd"), n.containerdSocket(),
		PauseImage, n.runcRoot(), filepath.Join(n.dir, "cni"))
}

func (n *Node) containerdSocket() string {
	return filepath.Join(n.dir, "run", "containerd", "containerd.sock")
}

func (n *Node) runcRoot() string { return filepath.Join(n.dir, "run", "runc") }

// cniConfig is a bridge with the node's address as the pods' gateway, no
// masquerading and no port mapping: pods reach the node and each other,
// nothing else.
func (n *Node) cniConfig() string {
	return fmt.Sprintf(`{
  "cniVersion": "0.4.0",
  "name": "backstop-realnode",
  "plugins": [
    {
      "type": "bridge",
      "bridge": %q,
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": %q, "gateway": %q}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": %q
      }
    },
    {"type": "loopback"}
  ]
}
`, BridgeName, PodSubnet, HostIP, filepath.Join(n.dir, "cni-ipam"))
}

// kubeletConfig is the KubeletConfiguration of a cgroup v1 machine with no
// systemd. Image garbage collection is off: imported images cannot be pulled
// again.
func (n *Node) kubeletConfig(port, healthzPort int) string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://%[1]s
imageServiceEndpoint: unix://%[1]s
address: %[2]s
port: %[3]d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %[4]d
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: %[5]q}
authorization:
  mode: AlwaysAllow
failSwapOn: false
podLogsDir: %[6]q
resolvConf: /etc/resolv.conf
clusterDomain: cluster.local
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%%"
  nodefs.inodesFree: "1%%"
  imagefs.available: "1%%"
serializeImagePulls: false
registerNode: true
maxPods: 40
volumePluginDir: %[7]q
`, n.containerdSocket(), HostIP, port, healthzPort, n.pki.path("ca.crt"), filepath.Join(n.dir, "pod-logs"), filepath.Join(n.dir, "volume-plugins"))
}

// kubeProxyConfig runs kube-proxy in iptables mode without touching the
// machine's sysctls (conntrack sizes, route_localnet).
func (n *Node) kubeProxyConfig(kubeconfig string, healthzPort, metricsPort int) string {
	return fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: %q}
hostnameOverride: %s
bindAddress: %s
clusterCIDR: %s
healthzBindAddress: 127.0.0.1:%d
metricsBindAddress: 127.0.0.1:%d
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
iptables:
  localhostNodePorts: false
  masqueradeAll: false
`, kubeconfig, NodeName, HostIP, PodSubnet, healthzPort, metricsPort)
}

func writeFile(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(content), 0o600)
}
