package io.kvstore.core;

import io.kvstore.core.spi.Mutation;
import io.kvstore.core.spi.ApplyResult;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The small value types: {@link Version} (parts, order, text form, parser), {@link NodeIds},
 * {@link WriteConcern}, {@link ApplyResult}, {@link Mutation}.
 */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class ValueTypesTest {
  private static final long MAX_PHYSICAL = (1L << (63 - Version.LOGICAL_BITS)) - 1;
  private static final List<String> NODE_CHARS = List.of("a", "Z", "0", "9", ".", "_", ":", "-");

  @ParameterizedTest(name = Seeds.NAME)
  @MethodSource("io.kvstore.core.Seeds#seeds")
  void toStringThenParse_isTheSameVersion_andPartsRoundTrip(long seed) {
    Seeds.run(seed, r -> {
      long physical = switch (r.nextInt(4)) {
        case 0 -> 0;
        case 1 -> MAX_PHYSICAL;
        default -> r.nextLong(MAX_PHYSICAL + 1);
      };
      int logical = r.nextInt(4) == 0 ? Version.MAX_LOGICAL : r.nextInt(Version.MAX_LOGICAL + 1);
      StringBuilder node = new StringBuilder();
      int len = 1 + r.nextInt(NodeIds.MAX_LENGTH);
      for (int i = 0; i < len; i++) {
        node.append(Seeds.pick(r, NODE_CHARS));
      }
      Version v = Version.of(physical, logical, node.toString());
      String ctx = Seeds.describe(seed, "%d.%d@%s", physical, logical, node);
      assertThat(v.physicalMillis()).as(ctx).isEqualTo(physical);
      assertThat(v.logical()).as(ctx).isEqualTo(logical);
      assertThat(v.nodeId()).as(ctx).isEqualTo(node.toString());
      assertThat(v.toString()).as(ctx).isEqualTo(physical + "." + logical + "@" + node);
      Version parsed = Version.parse(v.toString());
      assertThat(parsed).as(ctx).isEqualTo(v).hasSameHashCodeAs(v);
      assertThat(parsed.timestamp()).as(ctx).isEqualTo(v.timestamp());
      assertThat(Version.of(v.timestamp(), v.nodeId())).as(ctx).isEqualTo(v);
      assertThat(v.timestamp()).as(ctx).isNotNegative();
    });
  }

  @ParameterizedTest(name = "\"{0}\"")
  @ValueSource(strings = {"", "abc", "1", "1.2", "1@n", "1.2@", ".2@n", "1.@n", "@n", "1.2 @n",
      "x.2@n", "1.y@n", "1.2.3@n", "-1.2@n", "1.-2@n", "1.65536@n", "140737488355328.0@n",
      "99999999999999999999.0@n", "1.2@bad id", "1.2@a/b",
      "1.2@nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn"})
  void parse_rejectsWhatIsNotAVersion(String text) {
    assertThatThrownBy(() -> Version.parse(text)).isInstanceOf(IllegalArgumentException.class);
  }

  @Test
  void parse_messageShowsTheExpectedForm() {
    assertThatThrownBy(() -> Version.parse("nope")).isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("<millis>.<logical>@<nodeId>").hasMessageContaining("nope");
    assertThatThrownBy(() -> Version.parse(null)).isInstanceOf(NullPointerException.class);
  }

  @Test
  void of_rejectsOutOfRangeParts_namingThem() {
    assertThatThrownBy(() -> Version.of(-1, "n")).isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("-1");
    assertThatThrownBy(() -> Version.of(-1, 0, "n")).isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("physical");
    assertThatThrownBy(() -> Version.of(MAX_PHYSICAL + 1, 0, "n"))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("physical");
    assertThatThrownBy(() -> Version.of(1, Version.MAX_LOGICAL + 1, "n"))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("logical")
        .hasMessageContaining("65536");
    assertThatThrownBy(() -> Version.of(1, -1, "n")).isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("logical");
    assertThatThrownBy(() -> Version.of(1, 0, "bad id")).isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("node id");
    assertThatThrownBy(() -> Version.of(1, 0, null)).isInstanceOf(IllegalArgumentException.class);
  }

  @Test
  void order_isByPhysicalThenLogicalThenNodeId() {
    Version a = Version.of(10, 5, "z");
    Version b = Version.of(10, 6, "a");
    Version c = Version.of(11, 0, "a");
    Version d = Version.of(11, 0, "b");
    assertThat(List.of(d, c, b, a).stream().sorted().toList()).containsExactly(a, b, c, d);
    assertThat(d.isNewerThan(c)).isTrue();
    assertThat(c.isNewerThan(d)).isFalse();
    assertThat(c.isNewerThan(c)).isFalse();
    assertThat(c.compareTo(Version.of(11, 0, "a"))).isZero();
    assertThat(c).isEqualTo(Version.of(11, 0, "a")).isNotEqualTo(d);
  }

  @Test
  void timestamp_packsPhysicalAboveLogical() {
    Version v = Version.of(3, 7, "n");
    assertThat(v.timestamp()).isEqualTo((3L << 16) | 7);
    assertThat(Version.of((3L << 16) | 7, "n")).isEqualTo(v);
  }

  @Test
  void nodeIds_acceptTheDocumentedAlphabetUpTo64Chars() {
    assertThat(NodeIds.validate("node-1.eu_west:2")).isEqualTo("node-1.eu_west:2");
    assertThat(NodeIds.validate("x".repeat(64))).hasSize(64);
    assertThatThrownBy(() -> NodeIds.validate(null)).isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("empty");
    assertThatThrownBy(() -> NodeIds.validate("")).isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("empty");
    assertThatThrownBy(() -> NodeIds.validate("x".repeat(65)))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("65")
        .hasMessageContaining("64");
    for (String bad : List.of("a b", "a/b", "a@b", "é", "a\nb", "a\u0000", "😀", "a,b")) {
      assertThatThrownBy(() -> NodeIds.validate(bad)).as(bad)
          .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("index");
    }
  }

  @Test
  void writeConcern_requiredAcks() {
    int[][] table = {
        // size, ONE, QUORUM, ALL
        {1, 1, 1, 1}, {2, 1, 2, 2}, {3, 1, 2, 3}, {4, 1, 3, 4}, {5, 1, 3, 5}, {6, 1, 4, 6},
        {7, 1, 4, 7}};
    for (int[] row : table) {
      assertThat(WriteConcern.ONE.requiredAcks(row[0])).as("ONE of %d", row[0]).isEqualTo(row[1]);
      assertThat(WriteConcern.QUORUM.requiredAcks(row[0])).as("QUORUM of %d", row[0])
          .isEqualTo(row[2]);
      assertThat(WriteConcern.ALL.requiredAcks(row[0])).as("ALL of %d", row[0]).isEqualTo(row[3]);
    }
    for (WriteConcern c : WriteConcern.values()) {
      assertThatThrownBy(() -> c.requiredAcks(0)).isInstanceOf(IllegalArgumentException.class)
          .hasMessageContaining("was 0");
      assertThatThrownBy(() -> c.requiredAcks(-3)).isInstanceOf(IllegalArgumentException.class);
    }
  }

  @Test
  void applyResult_isHeldOnlyForAppliedAndIgnored() {
    assertThat(ApplyResult.APPLIED.isHeld()).isTrue();
    assertThat(ApplyResult.IGNORED.isHeld()).isTrue();
    assertThat(ApplyResult.REFUSED_CLOCK_DRIFT.isHeld()).isFalse();
    assertThat(ApplyResult.REFUSED_INVALID.isHeld()).isFalse();
  }

  @Test
  void mutation_factoriesValidateTheirParts() {
    Version v = Version.of(1, 0, "n");
    assertThatThrownBy(() -> Mutation.put("k", null, v, 0)).isInstanceOf(NullPointerException.class);
    assertThatThrownBy(() -> Mutation.put(null, new byte[0], v, 0))
        .isInstanceOf(NullPointerException.class);
    assertThatThrownBy(() -> Mutation.put("k", new byte[0], null, 0))
        .isInstanceOf(NullPointerException.class);
    assertThatThrownBy(() -> Mutation.put("k", new byte[0], v, -1))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("-1");
    assertThatThrownBy(() -> Mutation.expired("k", v, 0, 1))
        .isInstanceOf(IllegalArgumentException.class);
    assertThatThrownBy(() -> Mutation.expired("k", v, 5, 0))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("hash");
    assertThat(Mutation.delete("k", v).isDelete()).isTrue();
    assertThat(Mutation.expired("k", v, 5, 1).isDelete()).isTrue();
    assertThat(Mutation.put("k", new byte[0], v, 5).isDelete()).isFalse();
  }
}
