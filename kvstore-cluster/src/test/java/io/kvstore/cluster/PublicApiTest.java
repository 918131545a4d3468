package io.kvstore.cluster;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.File;
import java.lang.reflect.Constructor;
import java.lang.reflect.Executable;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.lang.reflect.Type;
import java.net.JarURLConnection;
import java.net.URL;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.jar.JarFile;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Pins the public surface of core and cluster: the public types per package; no ScaleCube, Reactor or
 * Netty type in any signature; and the SPI rule.
 *
 * <p><b>The SPI rule.</b> {@code io.kvstore.core.spi} is for replicator implementers. No public
 * signature of {@code io.kvstore.core} or {@code io.kvstore.cluster} mentions one of its types, except
 * the hooks through which a replicator is plugged into a store: {@code KvStoreBuilder.replicator(..)}
 * (both overloads) and {@code KvClusterBuilder.buildReplicator()} (a replicator for a store built by
 * hand). A user who never builds a store by hand never sees the SPI.
 */
@Timeout(value = 10, unit = TimeUnit.SECONDS)
class PublicApiTest {
  private static final List<String> FORBIDDEN = List.of("io.scalecube.", "reactor.", "io.netty.",
      "com.fasterxml.");

  private static final String SPI = "io.kvstore.core.spi.";
  /** Public methods allowed to mention an SPI type: the replicator hooks (class.method). */
  private static final Set<String> SPI_HOOKS = Set.of("KvStoreBuilder.replicator",
      "KvClusterBuilder.buildReplicator");

  /** The classes compiled from src/main (the directory KvCluster.class was loaded from). */
  private static List<Class<?>> mainClasses() throws Exception {
    return classesOf(KvCluster.class);
  }

  /**
   * The top-level and nested classes of the package of {@code anchor}, read from the directory or jar
   * it was loaded from (core is a directory in a targeted run, a jar after {@code package}).
   */
  private static List<Class<?>> classesOf(Class<?> anchor) throws Exception {
    String pkg = anchor.getPackageName();
    URL url = Objects.requireNonNull(anchor.getResource(anchor.getSimpleName() + ".class"));
    List<String> names = new ArrayList<>();
    if ("jar".equals(url.getProtocol())) {
      JarURLConnection conn = (JarURLConnection) url.openConnection();
      conn.setUseCaches(false);
      String prefix = pkg.replace('.', '/') + "/";
      try (JarFile jar = conn.getJarFile()) {
        jar.stream().map(e -> e.getName())
            .filter(n -> n.startsWith(prefix) && n.indexOf('/', prefix.length()) < 0)
            .forEach(n -> names.add(n.substring(prefix.length())));
      }
    } else {
      File dir = new File(url.toURI()).getParentFile();
      names.addAll(List.of(Objects.requireNonNull(dir.list())));
    }
    List<Class<?>> out = new ArrayList<>();
    for (String name : names) {
      if (name.endsWith(".class") && !name.equals("package-info.class")) {
        out.add(Class.forName(pkg + "." + name.substring(0, name.length() - 6)));
      }
    }
    return out;
  }

  private static TreeSet<String> publicTypes(Class<?> anchor) throws Exception {
    TreeSet<String> out = new TreeSet<>();
    for (Class<?> c : classesOf(anchor)) {
      if (Modifier.isPublic(c.getModifiers()) && isReachable(c)) {
        out.add(c.getName().substring(c.getPackageName().length() + 1));
      }
    }
    return out;
  }

  /** Public and every enclosing class public. */
  private static boolean isReachable(Class<?> c) {
    for (Class<?> k = c; k != null; k = k.getEnclosingClass()) {
      if (!Modifier.isPublic(k.getModifiers())) {
        return false;
      }
    }
    return true;
  }

  @Test
  void corePublicTypes_areTheUserApi() throws Exception {
    assertThat(publicTypes(io.kvstore.core.KvStore.class)).containsExactly("ChangeEvent",
        "ChangeEvent$Origin", "ChangeEvent$Type", "ChangeListener", "ClusterView",
        "ConditionFailedException", "CorruptionPolicy", "Durability", "KeyMaterial", "KvStore",
        "KvStoreBuilder",
        "KvStoreConfig", "KvStoreException", "Member", "Member$Status", "MembershipEvent",
        "MembershipEvent$Type", "NodeIds", "ReadConcern", "ReadOptions", "Registration",
        "StorageException", "StorageStatus",
        "StoreClosedException", "StoreStats", "Version", "Versioned", "WriteConcern",
        "WriteConcernException", "WriteOptions");
  }

  @Test
  void coreSpiPublicTypes_areTheReplicatorSpi() throws Exception {
    assertThat(publicTypes(io.kvstore.core.spi.Replicator.class)).containsExactly("AntiEntropy",
        "AntiEntropy$Plan", "ApplyResult", "Digest", "Hashing", "KeyVersion", "Mutation",
        "ReplicaStore", "Replicator", "Router", "WriteRequest", "WriteResult");
  }

  @Test
  void noPublicSignatureOfCoreOrCluster_mentionsTheSpi_exceptTheReplicatorHooks() throws Exception {
    List<String> leaks = new ArrayList<>();
    List<Class<?>> classes = new ArrayList<>(classesOf(io.kvstore.core.KvStore.class));
    classes.addAll(mainClasses());
    for (Class<?> c : classes) {
      if (!isReachable(c)) {
        continue;
      }
      if (c.getGenericSuperclass() != null && c.getGenericSuperclass().getTypeName().contains(SPI)) {
        leaks.add(c.getName() + " extends " + c.getGenericSuperclass().getTypeName());
      }
      for (Type t : c.getGenericInterfaces()) {
        if (t.getTypeName().contains(SPI)) {
          leaks.add(c.getName() + " implements " + t.getTypeName());
        }
      }
      List<Executable> members = new ArrayList<>(List.of(c.getConstructors()));
      members.addAll(List.of(c.getMethods()));
      for (Executable e : members) {
        if (SPI_HOOKS.contains(c.getSimpleName() + "." + e.getName())) {
          continue;
        }
        List<Type> types = new ArrayList<>(List.of(e.getGenericParameterTypes()));
        types.addAll(List.of(e.getGenericExceptionTypes()));
        if (e instanceof Method m) {
          types.add(m.getGenericReturnType());
        }
        for (Type t : types) {
          if (t.getTypeName().contains(SPI)) {
            leaks.add(c.getName() + "." + e.getName() + ": " + t.getTypeName());
          }
        }
      }
      for (java.lang.reflect.Field f : c.getFields()) {
        if (f.getGenericType().getTypeName().contains(SPI)) {
          leaks.add(c.getName() + "." + f.getName() + ": " + f.getGenericType().getTypeName());
        }
      }
    }
    assertThat(leaks).isEmpty();
  }

  @Test
  void onlyTheApiTypesArePublic() throws Exception {
    TreeSet<String> publicTypes = new TreeSet<>();
    for (Class<?> c : mainClasses()) {
      if (Modifier.isPublic(c.getModifiers())) {
        publicTypes.add(c.getSimpleName());
      }
    }
    assertThat(publicTypes).containsExactly("ClusterKeyring", "ClusterNode", "ClusterTls",
        "KvCluster",
        "KvClusterBuilder",
        "KvClusterConfig", "ReplicationStats");
  }

  @Test
  void clusterNode_exposesItsAddressesStatsSettingsKeyringAndPartitionMap() {
    TreeSet<String> methods = new TreeSet<>();
    for (Method m : ClusterNode.class.getDeclaredMethods()) {
      if (Modifier.isPublic(m.getModifiers())) {
        methods.add(m.getName() + "/" + m.getParameterCount() + ":" + m.getReturnType()
            .getSimpleName());
      }
    }
    assertThat(methods).containsExactly("config/0:KvClusterConfig", "dataAddress/0:String",
        "isSafeToShutdown/0:boolean", "keyring/0:ClusterKeyring", "membershipAddress/0:String",
        "nodeId/0:String", "ownersOf/1:List", "partitionCount/0:int", "partitionCounts/0:Map",
        "partitionMapVersion/0:long", "pendingPartitions/0:int", "pendingPartitionsByNode/0:Map",
        "replicationFactor/0:int", "shutdownBlocker/0:Optional", "stats/0:ReplicationStats",
        "toString/0:String", "updateKeyring/1:void");
  }

  @Test
  void noPublicSignatureMentionsAnImplementationLibrary() throws Exception {
    List<String> leaks = new ArrayList<>();
    for (Class<?> c : mainClasses()) {
      if (!Modifier.isPublic(c.getModifiers())) {
        continue;
      }
      List<Executable> members = new ArrayList<>(List.of(c.getConstructors()));
      members.addAll(List.of(c.getMethods()));
      for (Executable e : members) {
        List<Type> types = new ArrayList<>(List.of(e.getGenericParameterTypes()));
        types.addAll(List.of(e.getGenericExceptionTypes()));
        if (e instanceof Method m) {
          types.add(m.getGenericReturnType());
        }
        for (Type t : types) {
          for (String prefix : FORBIDDEN) {
            if (t.getTypeName().contains(prefix)) {
              leaks.add(c.getSimpleName() + "." + e.getName() + ": " + t.getTypeName());
            }
          }
        }
      }
      if (extendsForbidden(c)) {
        leaks.add(c.getSimpleName() + " extends " + c.getSuperclass());
      }
    }
    assertThat(leaks).isEmpty();
  }

  private static boolean extendsForbidden(Class<?> c) {
    Class<?> s = c.getSuperclass();
    return s != null && FORBIDDEN.stream().anyMatch(p -> s.getName().startsWith(p));
  }

  @Test
  void constructorsAreNotPublic() throws Exception {
    for (Class<?> c : mainClasses()) {
      if (Modifier.isPublic(c.getModifiers()) && !c.isRecord()) {
        for (Constructor<?> k : c.getConstructors()) {
          throw new AssertionError("public constructor " + k);
        }
      }
    }
  }
}
