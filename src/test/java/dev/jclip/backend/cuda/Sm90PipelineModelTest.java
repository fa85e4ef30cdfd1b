package dev.jclip.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.testing.TestRandom;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.Semaphore;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.Test;

/**
 * A model of gemm_sm90.cu's pipeline protocol, run on the CPU under random interleavings: the
 * producer thread, the consumer warpgroups, the stage ring, the mbarriers (arrival counts,
 * transaction bytes, phases told apart by parity), TMA loads completing at random later times
 * (multicast to both blocks of a cluster), the remote arrivals, and the ping-pong hand-off. It
 * mirrors the kernel's control flow by hand (unit sequence, k-step numbering g, which stage and
 * parity each wait uses, barrier counts) for each {@link Sm90Gemm.Schedule}, and checks what a
 * GPU run could only show as a wrong tile or a hang: every consumer step finds the data of its
 * own (unit, k-step) in the stage, still there when it releases it; nothing deadlocks; every
 * output tile is written exactly once. The kernel's arithmetic is the CUDA tests' business.
 */
class Sm90PipelineModelTest {
  static final Random RNG = TestRandom.create("Sm90PipelineModelTest");

  /** An mbarrier: arrivals expected per phase, those still missing, pending transaction bytes, completed phases. */
  static final class Barrier {
    final int count;
    int pending, tx, phases;

    Barrier(int count) {
      this.count = count;
      this.pending = count;
    }

    void arrive() {
      pending--;
      complete();
    }

    void expectTx(int bytes) {
      tx += bytes;
      arrive();
    }

    void completeTx(int bytes) {
      tx -= bytes;
      complete();
    }

    private void complete() {
      if (pending < 0) throw new AssertionError("more arrivals than the barrier's count " + count);
      if (pending == 0 && tx == 0) {
        phases++;
        pending = count;
      }
    }

    /** mbarrier.try_wait.parity: the phase of that parity counts as completed when the current phase's parity differs. */
    boolean tryWait(int parity) {
      return (phases & 1) != parity;
    }
  }

  /** The interleaving: agents take turns at their yield points, in an order drawn at random; TMA loads land at random later turns. */
  static final class Sim {
    final Random rnd;
    final List<Agent> agents = new ArrayList<>();
    final List<Runnable> inFlight = new ArrayList<>();
    final Semaphore back = new Semaphore(0);
    String failure;

    Sim(Random rnd) {
      this.rnd = rnd;
    }

    final class Agent {
      final String name;
      final Runnable body;
      final Semaphore turn = new Semaphore(0);
      BooleanSupplier waitingFor;
      boolean done;

      Agent(String name, Runnable body) {
        this.name = name;
        this.body = body;
      }

      /** A yield point: others may run before this agent goes on. */
      void step() {
        back.release();
        turn.acquireUninterruptibly();
      }

      /** Blocks (yielding) until {@code cond} holds. */
      void await(BooleanSupplier cond) {
        waitingFor = cond;
        step();
        waitingFor = null;
      }
    }

    Agent agent(String name, java.util.function.Consumer<Agent> body) {
      Agent[] a = new Agent[1];
      a[0] = new Agent(name, () -> body.accept(a[0]));
      agents.add(a[0]);
      return a[0];
    }

    /** Runs every agent to the end; false (with {@link #failure}) on a deadlock or an assertion. */
    boolean run() {
      for (Agent a : agents) {
        Thread.ofVirtual().start(() -> {
          a.turn.acquireUninterruptibly();
          try {
            a.body.run();
          } catch (Throwable t) {
            if (failure == null) failure = a.name + ": " + t.getMessage();
          }
          a.done = true;
          back.release();
        });
      }
      while (failure == null) {
        List<Object> choices = new ArrayList<>();
        for (Agent a : agents) if (!a.done && (a.waitingFor == null || a.waitingFor.getAsBoolean())) choices.add(a);
        for (Runnable t : inFlight) choices.add(t);
        if (choices.isEmpty()) {
          if (agents.stream().allMatch(a -> a.done)) return true;
          StringBuilder sb = new StringBuilder("deadlock; blocked:");
          for (Agent a : agents) if (!a.done) sb.append(' ').append(a.name);
          failure = sb.toString();
          break;
        }
        Object c = choices.get(rnd.nextInt(choices.size()));
        if (c instanceof Agent a) {
          a.turn.release();
          back.acquireUninterruptibly();
        } else {
          inFlight.remove(c);
          ((Runnable) c).run();
        }
      }
      return false;
    }
  }

  /** One block's shared memory: per stage, which (unit, k-step) each A row block and each W half holds, and the barriers. */
  static final class Block {
    final String[] a, w0, w1;
    final Barrier[] full, empty;
    int namedArrivals1, namedArrivals2, namedSyncs1, namedSyncs2;
    /**
     * The epilogue-warps kernel's staging buffer (which unit's accumulators each consumer's half
     * holds) and its barriers: staged (one arrival a consumer warpgroup here, its 128 threads in
     * the kernel) and drained (one a epilogue warp here, its 32 threads in the kernel).
     */
    final String[] staging = new String[2];
    final Barrier staged = new Barrier(2), drained = new Barrier(EPILOGUE_WARPS);
    /**
     * The ew16s kernels' barriers: staged and drained a half (half h: consumer warpgroup h's rows;
     * one arrival a warpgroup, one an epilogue warp), and go (the first warpgroup's arrival after
     * its first {@code lag} k steps, which the second waits for before it starts).
     */
    final Barrier[] stagedHalf = {new Barrier(1), new Barrier(1)}, drainedHalf = {new Barrier(EPILOGUE_WARPS), new Barrier(EPILOGUE_WARPS)};
    final Barrier go = new Barrier(1);

    Block(int stages, int emptyCount) {
      a = new String[stages];
      w0 = new String[stages];
      w1 = new String[stages];
      full = new Barrier[stages];
      empty = new Barrier[stages];
      for (int s = 0; s < stages; s++) {
        full[s] = new Barrier(1);
        empty[s] = new Barrier(emptyCount);
      }
    }
  }

  /**
   * One launch of a schedule's kernel on an M x N problem with {@code steps} k-steps, over
   * {@code grid} blocks, under one random interleaving; returns the tiles written (m0, n0) with
   * their counts, or throws on a protocol failure.
   */
  static Map<String, Integer> simulate(Sm90Gemm.Schedule sc, int m, int n, int steps, int grid, Random rnd) {
    return simulate(sc, m, n, steps, grid, rnd, false);
  }

  /** The epilogue warps of the epilogue-warps kernel (warps 1-3 of the producer warpgroup). */
  static final int EPILOGUE_WARPS = 3;

  /**
   * As {@link #simulate(Sm90Gemm.Schedule, int, int, int, int, Random)}; with {@code noDrainedWait}
   * the epilogue-warps kernel's consumers leave out their wait for the previous tile to be drained
   * (to show that the model sees what that wait is for).
   */
  static Map<String, Integer> simulate(Sm90Gemm.Schedule sc, int m, int n, int steps, int grid, Random rnd, boolean noDrainedWait) {
    return simulate(sc, m, n, steps, grid, rnd, noDrainedWait, Sm90Gemm.DEFAULT_SPLIT_LAG);
  }

  /** As above, the ew16s kernels' second consumer warpgroup starting {@code lag} k steps behind the first. */
  static Map<String, Integer> simulate(Sm90Gemm.Schedule sc, int m, int n, int steps, int grid, Random rnd, boolean noDrainedWait, int lag) {
    boolean ew = sc.epilogueWarps(), split = sc == Sm90Gemm.Schedule.EPILOGUE_WARPS_16_SPLIT;
    boolean pingpong = sc == Sm90Gemm.Schedule.PINGPONG || sc == Sm90Gemm.Schedule.PINGPONG_CLUSTER;
    int cluster = sc.cluster ? 2 : 1, stages = pingpong || sc.staged16() ? 6 : 4, bn = sc.bn;
    int tilesN = (n + bn - 1) / bn, tilesM = (m + 127) / 128, units = tilesN * ((tilesM + cluster - 1) / cluster);
    Sim sim = new Sim(rnd);
    Block[] blocks = new Block[grid];
    // empty: one arrive per consumer warp (4 a warpgroup) of the step's consumers, in each block of the cluster
    for (int b = 0; b < grid; b++) blocks[b] = new Block(stages, (pingpong ? 4 : 8) * cluster);
    Map<String, Integer> written = new HashMap<>();
    for (int b = 0; b < grid; b++) {
      int rank = b % cluster, first = b / cluster, stride = grid / cluster;
      Block me = blocks[b], peer = cluster > 1 ? blocks[b ^ 1] : null;
      // the producer thread
      sim.agent("block " + b + " producer", p -> {
        int g = 0;
        for (int u = first; u < units; u += stride) {
          for (int kt = 0; kt < steps; kt++, g++) {
            int s = g % stages, parity = ((g / stages) + 1) & 1;
            if (g >= stages) p.await(() -> me.empty[s].tryWait(parity));
            me.full[s].expectTx(cluster > 1 ? 3 : 2); // bytes in units: A, and W (two halves in clusters)
            String tag = u + "/" + kt;
            sim.inFlight.add(() -> {
              me.a[s] = tag;
              me.full[s].completeTx(1);
            });
            if (cluster == 1) {
              sim.inFlight.add(() -> {
                me.w0[s] = tag;
                me.full[s].completeTx(1);
              });
            } else {
              // this block's half of W, multicast to both blocks at the same offset
              for (Block dst : new Block[] {me, peer}) {
                sim.inFlight.add(() -> {
                  if (rank == 0) dst.w0[s] = tag;
                  else dst.w1[s] = tag;
                  dst.full[s].completeTx(1);
                });
              }
            }
            p.step();
          }
        }
      });
      // the consumer warpgroups
      for (int c = 0; c < 2; c++) {
        int wg = c;
        sim.agent("block " + b + " consumer " + c, q -> {
          int count = first < units ? (units - first + stride - 1) / stride : 0;
          int position = 0, g = 0, goStep = Math.min(lag, steps) - 1;
          // ew16s: the second warpgroup starts once the first has issued its first lag k steps
          if (split && wg == 1 && lag > 0 && steps > 0 && first < units) q.await(() -> me.go.tryWait(0));
          for (int u = first; u < units; u += stride, position++) {
            if (pingpong && (position & 1) != wg) continue;
            if (pingpong && position > 0) { // bar.sync 1 + c: the other consumer's arrival for this position
              int pos = position;
              q.await(() -> (wg == 0 ? me.namedArrivals1 : me.namedArrivals2) >= (pos + 1) / 2);
            }
            if (pingpong) g = position * steps;
            String[] read = new String[steps];
            for (int kt = 0; kt < steps; kt++, g++) {
              int s = g % stages, parity = (g / stages) & 1;
              q.await(() -> me.full[s].tryWait(parity));
              String want = u + "/" + kt;
              read[kt] = me.a[s] + " " + me.w0[s] + (cluster > 1 ? " " + me.w1[s] : "");
              String expect = want + " " + want + (cluster > 1 ? " " + want : "");
              if (!read[kt].equals(expect)) throw new AssertionError("step " + g + " (unit " + u + ", k-step " + kt + ") read " + read[kt]);
              if (split && wg == 0 && position == 0 && kt == goStep) me.go.arrive();
              q.step();
              // wgmma_wait<1>: the previous step's stage is released (its reads are over: they must still see their data)
              if (kt > 0) release(me, peer, g - 1, stages, u + "/" + (kt - 1), cluster);
              q.step();
            }
            release(me, peer, g - 1, stages, u + "/" + (steps - 1), cluster);
            if (pingpong && position + 1 < count) { // bar.arrive for the other consumer
              if (wg == 0) me.namedArrivals2++;
              else me.namedArrivals1++;
            }
            if (ew) { // the accumulators into the staging buffer, once the previous tile (ew16s: its half) is drained
              int t = position;
              Barrier drained = split ? me.drainedHalf[wg] : me.drained;
              if (t > 0 && !noDrainedWait) q.await(() -> drained.tryWait((t - 1) & 1));
              me.staging[wg] = "being written";
              q.step();
              me.staging[wg] = "unit " + u;
              (split ? me.stagedHalf[wg] : me.staged).arrive();
              q.step();
              continue; // the epilogue warps write the tile
            }
            if (!pingpong && wg == 1) continue; // cooperative: the two consumers write one tile, counted once
            int m0 = ((u / tilesN) * cluster + rank) * 128, n0 = (u % tilesN) * bn;
            if (m0 < m) written.merge(m0 + "," + n0, 1, Integer::sum);
            q.step();
          }
        });
      }
    }
    if (ew) {
      for (int b = 0; b < grid; b++) {
        Block me = blocks[b];
        int first = b, stride = grid;
        for (int e = 0; e < EPILOGUE_WARPS; e++) {
          int warp = e;
          sim.agent("block " + b + " epilogue warp " + e, q -> {
            int t = 0;
            for (int u = first; u < units; u += stride, t++) {
              int phase = t;
              String want = "unit " + u;
              if (split) { // each half on its own barriers, half 0's rows first
                for (int h = 0; h < 2; h++) {
                  Barrier staged = me.stagedHalf[h];
                  q.await(() -> staged.tryWait(phase & 1));
                  for (int read = 0; read < 2; read++) { // the half must stay staged while its rows are read
                    if (!want.equals(me.staging[h])) {
                      throw new AssertionError("epilogue warp " + warp + " of tile " + t + " read half " + h + " as " + me.staging[h] + ", not " + want);
                    }
                    q.step();
                  }
                  me.drainedHalf[h].arrive();
                  q.step();
                }
              } else {
                q.await(() -> me.staged.tryWait(phase & 1));
                for (int read = 0; read < 2; read++) { // its rows' reads span turns: the tile must stay staged throughout
                  if (!want.equals(me.staging[0]) || !want.equals(me.staging[1])) {
                    throw new AssertionError("epilogue warp " + warp + " of tile " + t + " read " + me.staging[0] + " / " + me.staging[1] + ", not " + want);
                  }
                  q.step();
                }
                me.drained.arrive();
                q.step();
              }
              if (warp == 0) {
                int m0 = (u / tilesN) * 128, n0 = (u % tilesN) * bn;
                if (m0 < m) written.merge(m0 + "," + n0, 1, Integer::sum);
              }
            }
          });
        }
      }
    }
    if (!sim.run()) throw new AssertionError(sc + " M=" + m + " N=" + n + " steps=" + steps + " grid=" + grid + ": " + sim.failure);
    return written;
  }

  /** The consumer warps' arrivals for step g: on their own block's empty barrier, and on the peer's in a cluster. */
  static void release(Block me, Block peer, int g, int stages, String tag, int cluster) {
    int s = g % stages;
    String held = me.a[s] + " " + me.w0[s] + (cluster > 1 ? " " + me.w1[s] : "");
    if (!held.equals(tag + " " + tag + (cluster > 1 ? " " + tag : ""))) {
      throw new AssertionError("step " + g + "'s stage was refilled (" + held + ") before its release");
    }
    for (int warp = 0; warp < 4; warp++) {
      me.empty[s].arrive();
      if (cluster > 1) peer.empty[s].arrive();
    }
  }

  @Test
  void everyScheduleReadsItsOwnDataWritesEveryTileOnceAndNeverDeadlocks() {
    // (M, N, k-steps, blocks): a few tiles over many blocks, one block, odd and even tile counts,
    // M tiles odd (a cluster's second block without rows), fewer units than blocks
    int[][] problems = {{300, 1024, 3, 4}, {129, 520, 1, 2}, {1000, 768, 5, 6}, {50, 3072, 12, 2}, {2000, 512, 2, 8}, {128, 256, 7, 2}};
    for (Sm90Gemm.Schedule sc : Sm90Gemm.Schedule.values()) {
      for (int[] pr : problems) {
        int m = pr[0], n = pr[1], steps = pr[2], grid = pr[3];
        for (int trial = 0; trial < 12; trial++) {
          Map<String, Integer> written = simulate(sc, m, n, steps, grid, new Random(RNG.nextLong()));
          int tilesN = (n + sc.bn - 1) / sc.bn, tilesM = (m + 127) / 128;
          assertEquals(tilesN * tilesM, written.size(), sc + " M=" + m + " N=" + n + ": tiles written " + written.keySet());
          for (var e : written.entrySet()) assertEquals(1, e.getValue(), sc + ": tile " + e.getKey() + " written " + e.getValue() + " times");
        }
      }
    }
  }

  /**
   * The ew16s kernels at every lag the kernel takes (0 to {@link Sm90Gemm#MAX_SPLIT_LAG}), on
   * problems with fewer k steps than the lag and more: every step reads its own data, every tile
   * is written once, nothing deadlocks; and without a consumer's wait for its half to be drained,
   * some interleaving overwrites a staged half while an epilogue warp reads it.
   */
  @Test
  void theSplitKernelsAtEveryLag() {
    Sm90Gemm.Schedule sc = Sm90Gemm.Schedule.EPILOGUE_WARPS_16_SPLIT;
    int[][] problems = {{300, 1024, 3, 4}, {129, 520, 1, 2}, {1000, 768, 5, 6}, {50, 3072, 12, 2}, {2000, 512, 2, 8}, {128, 256, 7, 2}};
    for (int lag = 0; lag <= Sm90Gemm.MAX_SPLIT_LAG; lag++) {
      for (int[] pr : problems) {
        for (int trial = 0; trial < 8; trial++) {
          Map<String, Integer> written = simulate(sc, pr[0], pr[1], pr[2], pr[3], new Random(RNG.nextLong()), false, lag);
          assertEquals(((pr[1] + 255) / 256) * ((pr[0] + 127) / 128), written.size(), "lag " + lag + ": tiles written " + written.keySet());
          for (var e : written.entrySet()) assertEquals(1, e.getValue(), "lag " + lag + ": tile " + e.getKey() + " written " + e.getValue() + " times");
        }
      }
    }
    boolean caught = false;
    for (int trial = 0; trial < 200 && !caught; trial++) {
      try {
        simulate(sc, 1000, 768, 2, 2, new Random(RNG.nextLong()), true, 2);
      } catch (AssertionError e) {
        caught = e.getMessage().contains("epilogue warp");
      }
    }
    assertTrue(caught, "200 interleavings without the drained wait never showed an overwritten staged half");
  }

  /**
   * The bound on the lag is real: a first warpgroup asked to run one step more than the ring
   * holds before the second starts waits for a stage only the second can release.
   */
  @Test
  void aLagPastTheRingDeadlocks() {
    AssertionError e = org.junit.jupiter.api.Assertions.assertThrows(AssertionError.class,
        () -> simulate(Sm90Gemm.Schedule.EPILOGUE_WARPS_16_SPLIT, 300, 512, 12, 1, new Random(RNG.nextLong()), false, 7));
    assertTrue(e.getMessage().contains("deadlock"), e.getMessage());
    simulate(Sm90Gemm.Schedule.EPILOGUE_WARPS_16_SPLIT, 300, 512, 12, 1, new Random(RNG.nextLong()), false, 6); // the whole ring: no deadlock yet
  }

  /**
   * Nor to the epilogue-warps kernel's: without the consumers' wait for the previous tile to be
   * drained, some interleaving overwrites a staged tile while the epilogue warps still read it.
   */
  @Test
  void withoutTheDrainedWaitTheConsumersOverwriteAStagedTile() {
    boolean caught = false;
    for (int trial = 0; trial < 200 && !caught; trial++) {
      try {
        simulate(Sm90Gemm.Schedule.EPILOGUE_WARPS, 1000, 768, 2, 2, new Random(RNG.nextLong()), true);
      } catch (AssertionError e) {
        caught = e.getMessage().contains("epilogue warp");
      }
    }
    assertTrue(caught, "200 interleavings without the drained wait never showed an overwritten staged tile");
  }

  /**
   * The model is not blind to the hazard the ping-pong hand-off exists for: without the named
   * barriers, some interleaving lets a consumer take a stage two rounds early.
   */
  @Test
  void withoutTheHandOffPingPongReadsTheOtherConsumersData() {
    boolean caught = false;
    for (int trial = 0; trial < 200 && !caught; trial++) {
      try {
        simulateWithoutHandOff(new Random(RNG.nextLong()));
      } catch (AssertionError e) {
        caught = e.getMessage().contains("read");
      }
    }
    assertTrue(caught, "200 interleavings without the hand-off never showed the early read");
  }

  /** PINGPONG on 300 x 1024 with 12 k-steps over 2 blocks, the named-barrier waits left out. */
  static void simulateWithoutHandOff(Random rnd) {
    int m = 300, n = 1024, steps = 12, grid = 2, stages = 6;
    int tilesN = n / 128, units = tilesN * ((m + 127) / 128);
    Sim sim = new Sim(rnd);
    for (int b = 0; b < grid; b++) {
      int first = b, stride = grid;
      Block me = new Block(stages, 4);
      sim.agent("producer " + b, p -> {
        int g = 0;
        for (int u = first; u < units; u += stride) {
          for (int kt = 0; kt < steps; kt++, g++) {
            int s = g % stages, parity = ((g / stages) + 1) & 1;
            if (g >= stages) p.await(() -> me.empty[s].tryWait(parity));
            me.full[s].expectTx(2);
            String tag = u + "/" + kt;
            sim.inFlight.add(() -> {
              me.a[s] = tag;
              me.full[s].completeTx(1);
            });
            sim.inFlight.add(() -> {
              me.w0[s] = tag;
              me.full[s].completeTx(1);
            });
            p.step();
          }
        }
      });
      for (int c = 0; c < 2; c++) {
        int wg = c;
        sim.agent("consumer " + b + "." + c, q -> {
          int position = 0;
          for (int u = first; u < units; u += stride, position++) {
            if ((position & 1) != wg) continue;
            int g = position * steps;
            for (int kt = 0; kt < steps; kt++, g++) {
              int s = g % stages, parity = (g / stages) & 1;
              q.await(() -> me.full[s].tryWait(parity));
              String want = u + "/" + kt;
              if (!(want + " " + want).equals(me.a[s] + " " + me.w0[s])) throw new AssertionError("step " + g + " read " + me.a[s]);
              q.step();
              if (kt > 0) release(me, null, g - 1, stages, u + "/" + (kt - 1), 1);
            }
            release(me, null, g - 1, stages, u + "/" + (steps - 1), 1);
          }
        });
      }
    }
    if (!sim.run()) throw new AssertionError(sim.failure);
  }
}
