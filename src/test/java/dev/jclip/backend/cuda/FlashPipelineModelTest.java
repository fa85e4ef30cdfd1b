package dev.jclip.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jclip.testing.TestRandom;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * A model of flash_attention.cu's pipelined kernel ({@code flash_attention_pipe_*}), run on the CPU:
 * each block's cursor over work items and their K/V tiles ({@code FaCursor}), the copies of the next
 * stage into the other half of the double buffer, cp.async groups landing at random times between
 * their commit and the {@code wait_group} that needs them, and the compute of each stage. It mirrors
 * the kernel's control flow by hand and checks what a GPU run could only show as wrong bits: every
 * stage computes from a buffer holding exactly its own K/V tile (and, at an item's first tile, its
 * own Q tile); every (item, tile) is computed once, in tile order, by one block; every item's
 * output is stored once, after its last tile. The arithmetic is {@code CudaAttentionTest}'s business.
 */
class FlashPipelineModelTest {
  static final Random RNG = TestRandom.create("FlashPipelineModelTest");
  static final int ROWS = 64, TILE = 64;

  /** FaCursor: item {@code it} of the block's sequence, its K/V tile {@code j} of {@code tiles}. */
  static final class Cursor {
    int it, j, tiles;
    final int items, stride, qblocks, n;
    final boolean causal;

    Cursor(int first, int items, int stride, int qblocks, int n, boolean causal) {
      this.it = first;
      this.items = items;
      this.stride = stride;
      this.qblocks = qblocks;
      this.n = n;
      this.causal = causal;
      this.tiles = count();
    }

    Cursor copy() {
      Cursor c = new Cursor(it, items, stride, qblocks, n, causal);
      c.j = j;
      c.tiles = tiles;
      return c;
    }

    int count() {
      int qb = it % qblocks;
      int kvEnd = causal ? Math.min(qb * ROWS + ROWS, n) : n;
      return (kvEnd + TILE - 1) / TILE;
    }

    boolean valid() {
      return it < items;
    }

    void advance() {
      if (++j == tiles) {
        j = 0;
        it += stride;
        if (it < items) tiles = count();
      }
    }
  }

  /** One cp.async group: the copies it lands (buffer half, what). */
  record Copy(int half, boolean q, long tag) {}

  static long tag(int item, int tile) {
    return (long) item << 20 | tile;
  }

  @Test
  void everyStageReadsItsOwnTilesAndEveryItemIsComputedOnce() {
    int[][] shapes = {{50, 12}, {77, 8}, {15, 8}, {197, 12}, {257, 16}, {577, 16}, {1, 1}, {64, 2}, {65, 3}};
    for (int round = 0; round < 40; round++) {
      int[] sh = shapes[RNG.nextInt(shapes.length)];
      int n = sh[0], heads = sh[1], batch = 1 + RNG.nextInt(40), qblocks = (n + ROWS - 1) / ROWS, items = batch * heads * qblocks;
      boolean causal = RNG.nextBoolean();
      int grid = Math.max(1, Math.min(items, 1 + RNG.nextInt(64)));
      String what = "N " + n + " H " + heads + " B " + batch + (causal ? " causal" : "") + ", grid " + grid;
      int[] nextTile = new int[items]; // per item: the next tile to compute
      int[] stores = new int[items];
      for (int block = 0; block < grid; block++) {
        runBlock(block, grid, items, qblocks, n, causal, nextTile, stores, what);
      }
      for (int it = 0; it < items; it++) {
        Cursor c = new Cursor(it, items, grid, qblocks, n, causal);
        assertEquals(c.tiles, nextTile[it], what + ": item " + it + " tiles computed");
        assertEquals(1, stores[it], what + ": item " + it + " stores");
      }
    }
  }

  /** The kernel's loop for one block, with cp.async groups landing at random allowed moments. */
  private static void runBlock(int block, int grid, int items, int qblocks, int n, boolean causal, int[] nextTile, int[] stores, String what) {
    long[] kv = {-1, -1}, q = {-1, -1}; // what each half of the buffer holds
    List<List<Copy>> pending = new ArrayList<>(); // committed groups not landed yet, oldest first
    Cursor cur = new Cursor(block, items, grid, qblocks, n, causal), next = cur.copy();
    List<Copy> group = new ArrayList<>();
    if (next.valid()) {
      issue(next, 0, group);
      next.advance();
    }
    pending.add(group);
    landSome(pending, kv, q);
    for (int s = 0; cur.valid(); s++) {
      group = new ArrayList<>();
      if (next.valid()) {
        issue(next, (s + 1) & 1, group);
        next.advance();
      }
      pending.add(group); // cp.async.commit_group
      landSome(pending, kv, q);
      // cp.async.wait_group 1: every group but the most recently committed one has landed
      for (int i = 0; i < pending.size(); i++) {
        if (pending.get(i) != group) land(pending.remove(i--), kv, q);
      }
      // __syncthreads, then the compute of stage s from half s & 1
      int u = s & 1;
      assertEquals(tag(cur.it, cur.j), kv[u], what + ": block " + block + " stage " + s + " reads another stage's K/V");
      if (cur.j == 0) assertEquals(tag(cur.it, 0), q[u], what + ": block " + block + " stage " + s + " reads another item's Q");
      assertEquals(nextTile[cur.it], cur.j, what + ": item " + cur.it + " tile order");
      nextTile[cur.it]++;
      if (cur.j + 1 == cur.tiles) stores[cur.it]++;
      landSome(pending, kv, q); // (lands into the other half only: stage s + 1's group)
      assertEquals(tag(cur.it, cur.j), kv[u], what + ": block " + block + " stage " + s + "'s half refilled during its compute");
      // __syncthreads
      cur.advance();
    }
    while (!pending.isEmpty()) land(pending.remove(0), kv, q); // cp.async.wait_group 0
    assertTrue(!next.valid(), what + ": block " + block + " left stages unissued");
  }

  /** The copies of the stage at {@code c} into half {@code u}: K and V, and Q at an item's first tile. */
  private static void issue(Cursor c, int u, List<Copy> group) {
    group.add(new Copy(u, false, tag(c.it, c.j)));
    if (c.j == 0) group.add(new Copy(u, true, tag(c.it, 0)));
  }

  private static void landSome(List<List<Copy>> pending, long[] kv, long[] q) {
    // groups land in any order, each at a random moment after its commit
    for (int i = 0; i < pending.size(); i++) {
      if (RNG.nextInt(3) == 0) land(pending.remove(i--), kv, q);
    }
  }

  private static void land(List<Copy> group, long[] kv, long[] q) {
    for (Copy c : group) {
      if (c.q()) q[c.half()] = c.tag();
      else kv[c.half()] = c.tag();
    }
  }
}
