package io.kvstore.core;

/** Rules for node ids, shared by every module so ids are valid everywhere they travel. */
public final class NodeIds {
  /** The longest node id accepted, in characters. */
  public static final int MAX_LENGTH = 64;

  private NodeIds() {}

  /**
   * Checks a node id: 1 to {@value #MAX_LENGTH} characters of {@code A-Z a-z 0-9 . _ : -}.
   *
   * @param nodeId the id to check
   * @return the same id
   * @throws IllegalArgumentException naming the rule that was broken
   */
  public static String validate(String nodeId) {
    if (nodeId == null || nodeId.isEmpty()) {
      throw new IllegalArgumentException("node id must not be empty");
    }
    if (nodeId.length() > MAX_LENGTH) {
      throw new IllegalArgumentException(
          "node id is " + nodeId.length() + " characters, more than the limit of " + MAX_LENGTH);
    }
    for (int i = 0; i < nodeId.length(); i++) {
      char c = nodeId.charAt(i);
      boolean ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
          || c == '.' || c == '_' || c == ':' || c == '-';
      if (!ok) {
        throw new IllegalArgumentException("node id may hold only A-Z a-z 0-9 . _ : - but has '"
            + c + "' at index " + i + ": " + nodeId);
      }
    }
    return nodeId;
  }
}
