package podrunner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

const (
	// maxTerminationMessage is the kubelet's limit per container.
	maxTerminationMessage = 4096
	// Log tail used with FallbackToLogsOnError, as the kubelet does.
	fallbackLines = 80
	fallbackBytes = 2048
)

// podRun runs one pod's containers and reports their state.
type podRun struct {
	r   *Runner
	key string
	uid types.UID
	pod *corev1.Pod // as it was when the run started
	dir string

	mu          sync.Mutex
	terminating bool
	killAt      time.Time
	termCh      chan struct{} // closed and replaced on every terminate
	phase       corev1.PodPhase
	reason      string // pod-level status reason and message
	message     string
	failed      bool // the pod fails whatever its containers did
	startTime   metav1.Time
	initialized bool
	initStatus  []corev1.ContainerStatus
	status      []corev1.ContainerStatus

	pushMu sync.Mutex
}

func newPodRun(r *Runner, pod *corev1.Pod) *podRun {
	p := &podRun{
		r:         r,
		key:       pod.Namespace + "/" + pod.Name,
		uid:       pod.UID,
		pod:       pod.DeepCopy(),
		dir:       filepath.Join(r.opts.Root, "pods", string(pod.UID)),
		termCh:    make(chan struct{}),
		phase:     corev1.PodPending,
		startTime: metav1.Now(),
	}
	if pod.Status.StartTime != nil {
		p.startTime = *pod.Status.StartTime
	}
	mk := func(cs []corev1.Container, reason string) []corev1.ContainerStatus {
		out := make([]corev1.ContainerStatus, len(cs))
		for i, c := range cs {
			out[i] = corev1.ContainerStatus{
				Name:    c.Name,
				Image:   c.Image,
				ImageID: imageID(r, c.Image),
				Started: ptr.To(false),
				State:   corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason}},
			}
		}
		return out
	}
	p.initStatus = mk(pod.Spec.InitContainers, "PodInitializing")
	mainReason := "ContainerCreating"
	if len(pod.Spec.InitContainers) > 0 {
		mainReason = "PodInitializing"
	}
	p.status = mk(pod.Spec.Containers, mainReason)
	return p
}

func imageID(r *Runner, image string) string {
	if bin, ok := r.opts.Images[image]; ok {
		return "podrunner://" + bin
	}
	return "podrunner://" + image
}

// terminate asks the run to stop: SIGTERM now, SIGKILL after grace. A later
// call may shorten the grace period.
func (p *podRun) terminate(grace time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	at := time.Now().Add(grace)
	if p.terminating && !at.Before(p.killAt) {
		return
	}
	p.terminating = true
	p.killAt = at
	close(p.termCh)
	p.termCh = make(chan struct{})
}

func (p *podRun) termState() (bool, time.Time, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.terminating, p.killAt, p.termCh
}

// stopping tells whether the run must not start anything more.
func (p *podRun) stopping() bool {
	term, _, _ := p.termState()
	return term || p.r.ctx.Err() != nil
}

// sleep waits d, or less when the run is told to stop; it reports whether
// the run may go on.
func (p *podRun) sleep(d time.Duration) bool {
	if p.stopping() {
		return false
	}
	_, _, ch := p.termState()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ch:
	case <-p.r.ctx.Done():
	}
	return !p.stopping()
}

func (p *podRun) run() {
	r := p.r
	pod := p.pod
	r.logf("pod %s: starting", p.key)
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		p.fail("RunnerError", err.Error())
		p.finish()
		return
	}
	p.push()

	if d := pod.Spec.ActiveDeadlineSeconds; d != nil {
		deadline := p.startTime.Add(time.Duration(*d) * time.Second)
		timer := time.AfterFunc(time.Until(deadline), func() {
			p.mu.Lock()
			p.failed = true
			p.reason = "DeadlineExceeded"
			p.message = "Pod was active on the node longer than the specified deadline"
			p.mu.Unlock()
			p.terminate(time.Duration(ptr.Deref(pod.Spec.TerminationGracePeriodSeconds, 30)) * time.Second)
		})
		defer timer.Stop()
	}

	// Volumes: retried while a Secret or ConfigMap is missing.
	var vols map[string]volume
	for {
		var err error
		vols, err = r.prepareVolumes(r.ctx, pod, p.dir)
		if err == nil {
			break
		}
		var unsupported *unsupportedError
		if errors.As(err, &unsupported) {
			p.fail("Unsupported", err.Error())
			p.finish()
			return
		}
		p.setWaiting("ContainerCreating", "MountVolume.SetUp failed: "+err.Error())
		if !p.sleep(time.Second) {
			p.finish()
			return
		}
	}

	for i := range pod.Spec.InitContainers {
		if !p.runWithRestarts(true, i, vols) {
			p.finish()
			return
		}
	}
	p.mu.Lock()
	p.initialized = true
	for i := range p.status {
		if w := p.status[i].State.Waiting; w != nil && w.Reason == "PodInitializing" {
			w.Reason = "ContainerCreating"
		}
	}
	p.mu.Unlock()

	var wg sync.WaitGroup
	for i := range pod.Spec.Containers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.runWithRestarts(false, i, vols)
		}()
	}
	wg.Wait()
	p.finish()
}

// runWithRestarts runs a container until it is done under the pod's
// restartPolicy. It reports whether it ended with success (for init
// containers: whether the pod may go on).
func (p *podRun) runWithRestarts(init bool, i int, vols map[string]volume) bool {
	policy := p.pod.Spec.RestartPolicy
	backoff := time.Second
	for attempt := 0; ; attempt++ {
		code, ran := p.runContainer(init, i, attempt, vols)
		if !ran || p.stopping() {
			return false
		}
		restart := policy == corev1.RestartPolicyAlways || (policy == corev1.RestartPolicyOnFailure && code != 0)
		if init {
			restart = policy != corev1.RestartPolicyNever && code != 0
		}
		if !restart {
			if init && code != 0 {
				p.mu.Lock()
				p.failed = true
				p.mu.Unlock()
			}
			return code == 0
		}
		p.mu.Lock()
		st := p.statusOf(init, i)
		st.LastTerminationState = st.State
		st.RestartCount++
		st.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
			Reason:  "CrashLoopBackOff",
			Message: fmt.Sprintf("back-off %s restarting failed container=%s pod=%s", backoff, st.Name, p.pod.Name),
		}}
		st.Ready = false
		st.Started = ptr.To(false)
		p.mu.Unlock()
		p.push()
		if !p.sleep(backoff) {
			return false
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

func (p *podRun) statusOf(init bool, i int) *corev1.ContainerStatus {
	if init {
		return &p.initStatus[i]
	}
	return &p.status[i]
}

// runContainer runs one attempt of a container. ran is false when the run
// stopped before the container could start.
func (p *podRun) runContainer(init bool, i, attempt int, vols map[string]volume) (code int, ran bool) {
	r := p.r
	pod := p.pod
	var c *corev1.Container
	if init {
		c = &pod.Spec.InitContainers[i]
	} else {
		c = &pod.Spec.Containers[i]
	}

	// Environment: retried while a Secret or ConfigMap is missing.
	var env []string
	var vars map[string]string
	for {
		var err error
		env, vars, err = r.containerEnv(r.ctx, pod, c, r.objects(pod.Namespace))
		if err == nil {
			break
		}
		var unsupported *unsupportedError
		if errors.As(err, &unsupported) {
			return p.startFailed(init, i, err.Error()), true
		}
		p.setContainerWaiting(init, i, "CreateContainerConfigError", err.Error())
		if !p.sleep(time.Second) {
			return 0, false
		}
	}
	if p.stopping() {
		return 0, false
	}

	argv, binary, err := r.command(c, vars)
	if err != nil {
		return p.startFailed(init, i, err.Error()), true
	}
	ms, err := mounts(c, vols, vars)
	if err != nil {
		return p.startFailed(init, i, err.Error()), true
	}

	cdir := filepath.Join(p.dir, fmt.Sprintf("%s-%d", c.Name, attempt))
	if err := os.MkdirAll(filepath.Join(cdir, "root"), 0o755); err != nil {
		return p.startFailed(init, i, err.Error()), true
	}
	termLog := filepath.Join(cdir, "termination-log")
	if err := os.WriteFile(termLog, nil, 0o666); err != nil {
		return p.startFailed(init, i, err.Error()), true
	}
	termPath := c.TerminationMessagePath
	if termPath == "" {
		termPath = corev1.TerminationMessagePathDefault
	}
	ms = append(ms, shimMount{Source: termLog, Target: termPath})
	sortMounts(ms)
	spec := shimSpec{
		Argv:           argv,
		Binary:         binary,
		Env:            env,
		Dir:            c.WorkingDir,
		Hostname:       hostname(pod),
		Root:           filepath.Join(cdir, "root"),
		Mounts:         ms,
		StartErrorFile: filepath.Join(cdir, "start-error"),
	}
	specPath := filepath.Join(cdir, "spec.json")
	data, _ := json.Marshal(spec)
	if err := os.WriteFile(specPath, data, 0o600); err != nil {
		return p.startFailed(init, i, err.Error()), true
	}

	logPath := r.LogPath(pod.Namespace, pod.Name, c.Name)
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return p.startFailed(init, i, err.Error()), true
	}
	defer logFile.Close()
	logStart, _ := logFile.Seek(0, io.SeekEnd)

	cmd := exec.Command(r.self)
	cmd.Env = []string{shimEnv + "=" + specPath}
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:      true,
		Unshareflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWUTS,
		Pdeathsig:    syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		return p.startFailed(init, i, err.Error()), true
	}
	pid := cmd.Process.Pid
	containerID := fmt.Sprintf("podrunner://%s-%s-%d", p.uid, c.Name, attempt)
	startedAt := metav1.Now()
	p.mu.Lock()
	st := p.statusOf(init, i)
	st.ContainerID = containerID
	st.State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: startedAt}}
	st.Started = ptr.To(true)
	st.Ready = !init
	if !init {
		p.phase = corev1.PodRunning
	}
	p.mu.Unlock()
	r.logf("pod %s: container %s started (pid %d): %s", p.key, c.Name, pid, strings.Join(argv, " "))
	p.push()

	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	p.watch(pid, exited)
	// Whatever the container left behind goes with it.
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	finishedAt := metav1.Now()

	code = exitCode(cmd.ProcessState)
	reason := "Completed"
	if code != 0 {
		reason = "Error"
	}
	message := readLimited(termLog, maxTerminationMessage)
	if se, err := os.ReadFile(spec.StartErrorFile); err == nil && code == shimExitCode {
		reason = "StartError"
		message = string(se)
	} else if message == "" && code != 0 && c.TerminationMessagePolicy == corev1.TerminationMessageFallbackToLogsOnError {
		message = logTail(logPath, logStart)
	}
	r.logf("pod %s: container %s exited with code %d", p.key, c.Name, code)
	p.mu.Lock()
	st = p.statusOf(init, i)
	st.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
		ExitCode:    int32(code),
		Reason:      reason,
		Message:     message,
		StartedAt:   startedAt,
		FinishedAt:  finishedAt,
		ContainerID: containerID,
	}}
	st.Ready = false
	st.Started = ptr.To(false)
	p.mu.Unlock()
	// The root mount point is an empty directory on the host.
	_ = os.Remove(spec.Root)
	if r.ctx.Err() == nil {
		p.push()
	}
	return code, true
}

// watch waits for the container process to exit, killing its process group
// when the run is told to stop.
func (p *podRun) watch(pid int, exited <-chan struct{}) {
	sentTerm := false
	for {
		term, killAt, ch := p.termState()
		var timer <-chan time.Time
		if term {
			if !sentTerm {
				_ = syscall.Kill(-pid, syscall.SIGTERM)
				sentTerm = true
			}
			d := time.Until(killAt)
			if d <= 0 {
				_ = syscall.Kill(-pid, syscall.SIGKILL)
				<-exited
				return
			}
			timer = time.After(d)
		}
		select {
		case <-exited:
			return
		case <-ch:
		case <-timer:
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			<-exited
			return
		case <-p.r.ctx.Done():
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			<-exited
			return
		}
	}
}

// startFailed records a container that could not be started.
func (p *podRun) startFailed(init bool, i int, msg string) int {
	now := metav1.Now()
	p.r.logf("pod %s: start container: %s", p.key, msg)
	p.mu.Lock()
	st := p.statusOf(init, i)
	st.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
		ExitCode:   shimExitCode,
		Reason:     "StartError",
		Message:    msg,
		StartedAt:  now,
		FinishedAt: now,
	}}
	st.Started = ptr.To(false)
	st.Ready = false
	p.mu.Unlock()
	p.push()
	return shimExitCode
}

// command works out the argument vector and the host binary (empty when
// argv[0] is looked up in the container's PATH), as the package
// documentation describes.
func (r *Runner) command(c *corev1.Container, vars map[string]string) ([]string, string, error) {
	var cmd, args []string
	for _, s := range c.Command {
		cmd = append(cmd, expand(s, vars))
	}
	for _, s := range c.Args {
		args = append(args, expand(s, vars))
	}
	bin, mapped := r.opts.Images[c.Image]
	if !mapped && !r.opts.AllowUnmappedImages {
		return nil, "", fmt.Errorf("image %q is not in the pod runner's image table", c.Image)
	}
	if len(cmd) == 0 {
		if !mapped {
			return nil, "", fmt.Errorf("container %q has no command and its image %q is not mapped to a binary", c.Name, c.Image)
		}
		return append([]string{bin}, args...), bin, nil
	}
	argv := append(cmd, args...)
	if mapped {
		name := filepath.Base(cmd[0])
		if name == filepath.Base(bin) || name == imageName(c.Image) {
			return argv, bin, nil
		}
		if sibling := filepath.Join(filepath.Dir(bin), name); name != "." && name != "/" {
			if fi, err := os.Stat(sibling); err == nil && fi.Mode().IsRegular() {
				return argv, sibling, nil
			}
		}
	}
	return argv, "", nil
}

// imageName is the last path element of an image's repository:
// "ghcr.io/backstop-io/backstop:dev" -> "backstop".
func imageName(image string) string {
	if i := strings.IndexByte(image, '@'); i >= 0 {
		image = image[:i]
	}
	if i := strings.LastIndexByte(image, '/'); i >= 0 {
		image = image[i+1:]
	}
	if i := strings.IndexByte(image, ':'); i >= 0 {
		image = image[:i]
	}
	return image
}

func exitCode(ps *os.ProcessState) int {
	if ps == nil {
		return 128 + int(syscall.SIGKILL)
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

func readLimited(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	data, _ := io.ReadAll(io.LimitReader(f, n))
	return string(data)
}

// logTail returns the last lines written to the log since offset.
func logTail(path string, offset int64) string {
	data, err := os.ReadFile(path)
	if err != nil || int64(len(data)) < offset {
		return ""
	}
	data = data[offset:]
	data = bytes.TrimRight(data, "\n")
	lines := bytes.Split(data, []byte("\n"))
	if len(lines) > fallbackLines {
		lines = lines[len(lines)-fallbackLines:]
	}
	out := bytes.Join(lines, []byte("\n"))
	if len(out) > fallbackBytes {
		out = out[len(out)-fallbackBytes:]
	}
	return string(out)
}

func (p *podRun) setWaiting(reason, msg string) {
	p.mu.Lock()
	for _, list := range [][]corev1.ContainerStatus{p.initStatus, p.status} {
		for i := range list {
			if list[i].State.Waiting != nil {
				list[i].State.Waiting = &corev1.ContainerStateWaiting{Reason: reason, Message: msg}
			}
		}
	}
	p.mu.Unlock()
	p.push()
}

func (p *podRun) setContainerWaiting(init bool, i int, reason, msg string) {
	p.mu.Lock()
	st := p.statusOf(init, i)
	st.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}
	p.mu.Unlock()
	p.push()
}

func (p *podRun) fail(reason, msg string) {
	p.r.logf("pod %s: %s: %s", p.key, reason, msg)
	p.mu.Lock()
	p.failed = true
	p.reason = reason
	p.message = msg
	p.mu.Unlock()
}

// finish writes the pod's final phase and, when it is being deleted,
// confirms the deletion. Nothing is written once the runner stops.
func (p *podRun) finish() {
	if p.r.ctx.Err() != nil {
		return
	}
	p.mu.Lock()
	// Succeeded when every container ended with 0 and none would be
	// restarted; a pod deleted while running ends Failed.
	p.phase = corev1.PodSucceeded
	if p.failed || (p.pod.Spec.RestartPolicy == corev1.RestartPolicyAlways && !p.terminating) {
		p.phase = corev1.PodFailed
	}
	for _, s := range p.status {
		if s.State.Terminated == nil || s.State.Terminated.ExitCode != 0 {
			p.phase = corev1.PodFailed
		}
	}
	terminating := p.terminating
	phase := p.phase
	p.mu.Unlock()
	p.push()
	p.r.logf("pod %s: %s", p.key, phase)
	if terminating {
		pod := p.pod
		if err := p.r.confirmDeletion(p.r.ctx, pod); err != nil && p.r.ctx.Err() == nil {
			p.r.logf("pod %s: confirm deletion: %v", p.key, err)
		}
	}
}

// push writes the run's view of the pod status to the API server.
func (p *podRun) push() {
	p.pushMu.Lock()
	defer p.pushMu.Unlock()
	if p.r.ctx.Err() != nil {
		return
	}
	err := updateStatus(p.r.ctx, p.r.cs, p.pod.Namespace, p.pod.Name, p.uid, func(st *corev1.PodStatus) {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.apply(st)
	})
	if err != nil && p.r.ctx.Err() == nil {
		p.r.logf("pod %s: update status: %v", p.key, err)
	}
}

func (p *podRun) apply(st *corev1.PodStatus) {
	st.Phase = p.phase
	st.Reason = p.reason
	st.Message = p.message
	st.HostIP = nodeIP
	st.HostIPs = []corev1.HostIP{{IP: nodeIP}}
	st.PodIP = nodeIP
	st.PodIPs = []corev1.PodIP{{IP: nodeIP}}
	st.StartTime = &p.startTime
	st.InitContainerStatuses = deepCopyStatuses(p.initStatus)
	st.ContainerStatuses = deepCopyStatuses(p.status)

	setCondition(st, corev1.PodReadyToStartContainers, corev1.ConditionTrue, "", "")
	if p.initialized || len(p.initStatus) == 0 {
		setCondition(st, corev1.PodInitialized, corev1.ConditionTrue, "", "")
	} else {
		setCondition(st, corev1.PodInitialized, corev1.ConditionFalse, "ContainersNotInitialized", "containers with incomplete status: init containers")
	}
	ready := p.phase == corev1.PodRunning
	for _, s := range p.status {
		if s.State.Running == nil {
			ready = false
		}
	}
	switch {
	case ready:
		setCondition(st, corev1.ContainersReady, corev1.ConditionTrue, "", "")
		setCondition(st, corev1.PodReady, corev1.ConditionTrue, "", "")
	case p.phase == corev1.PodSucceeded || p.phase == corev1.PodFailed:
		setCondition(st, corev1.ContainersReady, corev1.ConditionFalse, "PodCompleted", "")
		setCondition(st, corev1.PodReady, corev1.ConditionFalse, "PodCompleted", "")
	default:
		setCondition(st, corev1.ContainersReady, corev1.ConditionFalse, "ContainersNotReady", "containers with unready status")
		setCondition(st, corev1.PodReady, corev1.ConditionFalse, "ContainersNotReady", "containers with unready status")
	}
}

func deepCopyStatuses(in []corev1.ContainerStatus) []corev1.ContainerStatus {
	if in == nil {
		return nil
	}
	out := make([]corev1.ContainerStatus, len(in))
	for i := range in {
		in[i].DeepCopyInto(&out[i])
	}
	return out
}

func setCondition(st *corev1.PodStatus, t corev1.PodConditionType, s corev1.ConditionStatus, reason, msg string) {
	now := metav1.Now()
	for i := range st.Conditions {
		c := &st.Conditions[i]
		if c.Type != t {
			continue
		}
		if c.Status != s {
			c.LastTransitionTime = now
		}
		c.Status, c.Reason, c.Message = s, reason, msg
		return
	}
	st.Conditions = append(st.Conditions, corev1.PodCondition{Type: t, Status: s, Reason: reason, Message: msg, LastTransitionTime: now})
}

// statusBackoff retries status writes that lose a race with another writer
// (the Job controller edits the pod's finalizers).
var statusBackoff = wait.Backoff{Steps: 30, Duration: 10 * time.Millisecond, Factor: 1.5, Jitter: 0.1, Cap: time.Second}

// updateStatus applies mutate to the current status of the pod (if it is
// still the pod of that UID) and writes it.
func updateStatus(ctx context.Context, cs kubernetes.Interface, namespace, name string, uid types.UID, mutate func(*corev1.PodStatus)) error {
	return retry.RetryOnConflict(statusBackoff, func() error {
		pod, err := cs.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if pod.UID != uid {
			return nil
		}
		mutate(&pod.Status)
		_, err = cs.CoreV1().Pods(namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	})
}
